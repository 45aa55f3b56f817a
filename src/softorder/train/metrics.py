"""Per-task evaluation and the records a run writes (statistics over trials: ``softorder.stats``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet

Scores = tuple[list[float], list[float]]  # each task's mean loss and error rate on one split


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """Mixed precision for ``bf16``/``fp16``; nothing for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def as_input(x: Tensor) -> Tensor:
    """Images stored as uint8 become floats in [0, 1]; everything else passes through."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


@torch.no_grad()
def evaluate(
    net: MultiTaskNet, tasks: Sequence[TaskData], split: str, chunk: int = 1024, precision: str = "fp32"
) -> Scores:
    """Mean loss and error rate (fraction wrong) of each task on ``split`` (train|val|test)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    losses, errors = [], []
    for t, task in enumerate(tasks):
        x, y = task.split(split)
        total_loss, wrong = 0.0, 0
        for i in range(0, x.shape[0], chunk):
            xb = as_input(x[i : i + chunk].to(device))
            yb = y[i : i + chunk].to(device)
            with autocast(device, precision):
                logits = [z.float() for z in net([xb], tasks=[t])]
            total_loss += float(net.losses(logits, [yb], tasks=[t])[0]) * yb.shape[0]
            wrong += int((net.predict(logits, tasks=[t])[0] != yb).sum())
        n = max(int(x.shape[0]), 1)
        losses.append(total_loss / n)
        errors.append(wrong / n)
    net.train(was_training)
    return losses, errors


def run_result(
    benchmark: str,
    ordering: str,
    seed: int,
    task_names: Sequence[str],
    best_step: int,
    steps: int,
    test: Scores,
    val: Scores,
    elapsed: float,
) -> dict[str, object]:
    """The ``result.json`` record of a run: per-task and mean test/val loss and error."""
    (test_loss, test_error), (val_loss, val_error) = test, val
    return {
        "benchmark": benchmark,
        "ordering": ordering,
        "seed": seed,
        "task_names": list(task_names),
        "best_step": best_step,
        "steps": steps,
        "test_loss": test_loss,
        "test_error": test_error,
        "mean_test_loss": sum(test_loss) / len(test_loss),
        "mean_test_error": sum(test_error) / len(test_error),
        "val_loss": val_loss,
        "val_error": val_error,
        "mean_val_loss": sum(val_loss) / len(val_loss),
        "mean_val_error": sum(val_error) / len(val_error),
        "train_time_s": elapsed,
    }


def validation_record(
    step: int, elapsed: float, train_loss: Tensor, val: Scores, net: MultiTaskNet
) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: per-task train loss, validation loss and error, softmax(S)."""
    val_loss, val_error = val
    s = net.mixing_weights()
    return {
        "step": step,
        "time": elapsed,
        "train_loss": train_loss.tolist(),
        "val_loss": val_loss,
        "val_error": val_error,
        "mean_val_loss": sum(val_loss) / len(val_loss),
        "mean_val_error": sum(val_error) / len(val_error),
        "S": s.tolist() if s is not None else None,
    }
