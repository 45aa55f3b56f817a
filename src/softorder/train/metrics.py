"""Per-task evaluation and the records a run writes (statistics over trials: ``softorder.stats``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet


class Scores(NamedTuple):
    """Each task's mean loss and error rate (fraction wrong) on one split."""

    loss: list[float]
    error: list[float]

    @property
    def mean_loss(self) -> float:
        return sum(self.loss) / len(self.loss)

    @property
    def mean_error(self) -> float:
        return sum(self.error) / len(self.error)


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
    return Scores(losses, errors)


@dataclass
class RunResult:
    """A finished run (``result.json``): per-task and mean test / val loss and error of the
    best-on-validation weights; ``extras`` follow the standard entries (health, accuracy, …)."""

    benchmark: str
    ordering: str
    seed: int
    task_names: list[str]
    best_step: int
    steps: int
    test: Scores
    val: Scores
    train_time_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "ordering": self.ordering,
            "seed": self.seed,
            "task_names": list(self.task_names),
            "best_step": self.best_step,
            "steps": self.steps,
            "test_loss": self.test.loss,
            "test_error": self.test.error,
            "mean_test_loss": self.test.mean_loss,
            "mean_test_error": self.test.mean_error,
            "val_loss": self.val.loss,
            "val_error": self.val.error,
            "mean_val_loss": self.val.mean_loss,
            "mean_val_error": self.val.mean_error,
            "train_time_s": self.train_time_s,
            **self.extras,
        }


@dataclass
class Evaluation:
    """One validation record (a ``metrics.jsonl`` line): per-task train loss, validation loss and
    error, and ``S``: the mixing weights ``net.mixing_weights()`` (softmax(S), with ``soft_norm: l2``
    divided by their L2 norm); ``extras`` follow them (health, throughput)."""

    step: int
    time: float
    train_loss: list[float]
    val: Scores
    S: list[Any] | None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, step: int, elapsed: float, train_loss: Tensor, val: Scores, net: MultiTaskNet) -> Evaluation:
        s = net.mixing_weights()
        return cls(step, elapsed, train_loss.tolist(), val, s.tolist() if s is not None else None)

    def score(self, select: str) -> float:
        """What best-weights selection minimises: ``val_loss`` or ``val_error``."""
        return self.val.mean_loss if select == "val_loss" else self.val.mean_error

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "time": self.time,
            "train_loss": self.train_loss,
            "val_loss": self.val.loss,
            "val_error": self.val.error,
            "mean_val_loss": self.val.mean_loss,
            "mean_val_error": self.val.mean_error,
            "S": self.S,
            **self.extras,
        }
