"""Run health: is the core still alive, is the loss leaving chance, how committed is S?

Measured at every evaluation on a fixed :class:`Probe` (the first ``PROBE_ROWS`` validation rows
of every task, fewer if a task has fewer; or, when every task reads the same inputs as CelebA's
attributes do, the first ``PROBE_ROWS`` validation inputs), in eval mode, and logged in
``metrics.jsonl`` (``health``) and TensorBoard (``health/``):

* ``rms[k]`` — root mean square of the core's output at depth k (over rows and units);
* ``dead[k]`` — fraction of units at depth k that are zero on every probe row (a conv unit is a
  channel: dead when it is zero at every position). A ReLU unit that is zero on every input gets
  no gradient and never recovers; a last depth that is entirely dead leaves every task at chance;
* ``dead_tasks[k]`` — how many tasks see every unit of depth k dead on their own probe rows (such
  a task predicts a constant);
* ``s_entropy[k]`` — mean over tasks of the entropy of softmax(S[t, k]) divided by log L: 1 is the
  uniform mixture S starts from, 0 a one-hot choice of one layer (soft ordering only).

:func:`verdict` turns a record into the flags that ``compare`` marks: ``dead_last_depth`` and
``at_chance`` (mean training loss still at least ``CHANCE_FRACTION`` of the loss of predicting
each task's class prior).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train.metrics import Evaluation, as_input

PROBE_ROWS = 32
CHANCE_FRACTION = 0.95


@dataclass
class Probe:
    """The fixed inputs health is measured on: one batch of ``rows`` rows per task (a list), or
    one batch that every task reads (a tensor), and each task's chance loss (:func:`chance_losses`)."""

    xs: list[Tensor] | Tensor
    rows: int
    chance: list[float]

    @classmethod
    def of_tasks(cls, tasks: Sequence[TaskData]) -> Probe:
        """The first validation rows of every task (as many for each: any ordering takes equal blocks)."""
        rows = min(PROBE_ROWS, *(t.x_val.shape[0] for t in tasks))
        return cls([t.x_val[:rows] for t in tasks], rows, chance_losses(tasks))

    @classmethod
    def shared(cls, x: Tensor, train_labels: Tensor) -> Probe:
        """The first ``PROBE_ROWS`` of the inputs ``x`` that every task reads, with binary tasks'
        chance from their training labels ``[N, T]`` in {0, 1} (the entropy of each task's prior)."""
        if train_labels.dim() != 2 or not bool(((train_labels == 0) | (train_labels == 1)).all()):
            raise ValueError("Probe.shared takes binary training labels [N, tasks] in {0, 1}")
        ones = train_labels.double().mean(0)
        chance = [prior_entropy(torch.stack([1 - m, m])) for m in ones]
        return cls(x[:PROBE_ROWS], min(PROBE_ROWS, x.shape[0]), chance)


@torch.no_grad()
def measure(net: MultiTaskNet, probe: Probe | Sequence[TaskData]) -> dict[str, Any]:
    """Per-depth activation RMS and dead-unit fraction on the probe, and the entropy of S."""
    probe = probe if isinstance(probe, Probe) else Probe.of_tasks(probe)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = as_input(probe.xs.to(device)) if isinstance(probe.xs, Tensor) else [
        as_input(xt.to(device)) for xt in probe.xs
    ]
    try:
        with net.core.recording() as trace:
            net(x)
    finally:
        net.train(was_training)
    num_tasks = net.num_tasks
    shared_path = isinstance(probe.xs, Tensor) and net.core.shares_path
    rms, dead, dead_tasks = [], [], []
    for y in trace:
        y = y.float()
        units = y.flatten(2) if y.dim() > 2 else y.unsqueeze(2)  # [N, units, positions]
        alive = (units != 0).any(dim=2)  # [N, units]
        if shared_path:  # parallel order on one shared input: one path for all tasks
            alive = alive.repeat(num_tasks, 1)
        per_task = alive.view(num_tasks, probe.rows, -1).any(dim=1)  # [T, units]: alive for that task
        rms.append(float(y.pow(2).mean().sqrt()))
        dead.append(float(1.0 - alive.any(dim=0).float().mean()))
        dead_tasks.append(int((~per_task.any(dim=1)).sum()))
    return {"rms": rms, "dead": dead, "dead_tasks": dead_tasks, "s_entropy": s_entropy(net)}


def s_entropy(net: MultiTaskNet) -> list[float] | None:
    """Mean over tasks of the normalised entropy of softmax(S[t, k]) per depth k (None: no S)."""
    S = getattr(net.core, "S", None)
    if S is None:
        return None
    w = torch.softmax(S.detach().float() / net.core.temperature, dim=-1)  # [T, K, L]
    h = -(w * w.clamp_min(1e-12).log()).sum(-1) / math.log(max(w.shape[-1], 2))
    return h.mean(0).tolist()


def chance_losses(tasks: Sequence[TaskData]) -> list[float]:
    """Each task's loss when it predicts its class prior (the entropy of its training labels):
    what a net whose core is dead still reaches; log C for balanced classes."""
    return [prior_entropy(torch.bincount(t.y_train, minlength=t.num_classes).double() / t.y_train.numel())
            for t in tasks]


def prior_entropy(p: Tensor) -> float:
    """Entropy (nats) of class probabilities ``p``: the loss of always predicting them."""
    return float(-(p[p > 0] * p[p > 0].log()).sum())


class Monitor:
    """Health of one run while it trains: adds ``health`` to each validation record, warns once
    when the run looks dead, and gives the flags of the last record (``result.json``)."""

    def __init__(self, probe: Probe | Sequence[TaskData], steps: int, name: str = "this run") -> None:
        self.probe = probe if isinstance(probe, Probe) else Probe.of_tasks(probe)
        self.chance, self.steps, self.name = self.probe.chance, steps, name
        self.flags = {"dead_last_depth": False, "at_chance": False}
        self.warned = False

    def update(self, net: MultiTaskNet, record: Evaluation) -> None:
        record.extras["health"] = measure(net, self.probe)
        self.flags = verdict(record.to_dict(), self.chance)
        # a dead last depth never recovers; the loss may sit at chance for a while before it drops
        # (the L2 mixture on the quick Omniglot core leaves it only after 100-150 of 400 steps)
        late = record.step >= self.steps / 2
        worrying = self.flags["dead_last_depth"] or (self.flags["at_chance"] and late)
        message = warning(self.flags, record.step, self.name, net.core.depth_norm) if worrying else None
        if message and not self.warned:
            print(message, file=sys.stderr, flush=True)
            self.warned = True

    def restore(self, records: Sequence[dict[str, Any]]) -> None:
        """After a resume: the flags of the last record kept (a run resumed at its last step
        keeps the verdict it had)."""
        if records and records[-1].get("health"):
            self.flags = verdict(records[-1], self.chance)

    def result(self) -> dict[str, Any]:
        return {**self.flags, "unhealthy": any(self.flags.values())}


def verdict(record: dict[str, Any], chance: Sequence[float]) -> dict[str, bool]:
    """Flags of one ``metrics.jsonl`` record: the last depth entirely dead; the training loss at
    chance."""
    health = record.get("health") or {}
    dead, dead_tasks = health.get("dead") or [0.0], health.get("dead_tasks") or [0]
    train = sum(record["train_loss"]) / len(record["train_loss"])
    return {
        "dead_last_depth": dead[-1] >= 1.0 or dead_tasks[-1] > 0,
        "at_chance": train >= CHANCE_FRACTION * sum(chance) / len(chance),
    }


def warning(
    flags: dict[str, bool], step: int, name: str = "this run", depth_norm: str = "none"
) -> str | None:
    """The message for the run ``name`` that looks dead at ``step`` (None when it looks alive);
    it suggests unit-RMS depth inputs only to a run whose core does not read them already."""
    said = []
    if flags["dead_last_depth"]:
        said.append("every unit of the last depth is dead for some task (zero on its probe rows)")
    if flags["at_chance"]:
        said.append("the training loss is still at chance")
    if not said:
        return None
    return (
        f"softorder: warning: {name}, step {step}: {' and '.join(said)}; it may not learn "
        f"(try {'' if depth_norm == 'rms' else 'depth_norm=rms, '}a lower lr or init=he; "
        "see docs/results.md, 'Run health')"
    )


def log_tensorboard(writer: Any, health: dict[str, Any], step: int) -> None:
    for key in ("rms", "dead", "s_entropy"):
        for k, v in enumerate(health.get(key) or []):
            writer.add_scalar(f"health/{key}_depth{k}", v, step)
