"""The one training loop (Sec. 4): every step trains on a batch of every task (the loss is the sum
over tasks of each task's mean loss; Adam updates layers, S and heads jointly). Every
``eval_every`` steps the validation split is scored; the weights with the best mean validation
metric are kept, and the test split is scored with them at the end.

What is trained is a :class:`Learner`: one network
(:class:`~softorder.train.net_learner.NetLearner`, the batches from a
:class:`~softorder.train.sources.BatchSource`) or R trials stacked into one vectorised model
(:class:`~softorder.train.trials.StackedTrials`). The :class:`Trainer` owns everything else once:
the evaluation cadence, best-weights selection, run health, logging (``metrics.jsonl``,
TensorBoard), checkpoints and resume, and the finished run's ``best.pt`` and ``result.json``.

Under ``torchrun`` (several processes) the net is wrapped in DistributedDataParallel. Every rank
draws the same global batch of ``world_size × batch_size`` rows per task and trains on its own slice
of it, so a run on N processes follows the run of one process with N times the batch. Rank 0 alone
evaluates (the others wait at a barrier) and writes the run directory; see ``distributed.py``.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from softorder.nn.network import MultiTaskNet
from softorder.train import distributed, health
from softorder.train.checkpoint import save_checkpoint, write_json
from softorder.train.config import Config, check_resume
from softorder.train.logs import RunLog
from softorder.train.metrics import Evaluation, RunResult, Scores
from softorder.train.rundir import RunDir


class TrainingDiverged(RuntimeError):
    """A task's loss became NaN or inf."""


def check_losses(
    losses: Tensor, names: Sequence[str], step: int, checkpoint: Path | None, what: str = "task"
) -> None:
    """Raise :class:`TrainingDiverged` naming the first task whose loss is NaN or inf
    (``checkpoint``: where the run keeps its checkpoint; None: it keeps none)."""
    bad = ~torch.isfinite(losses.detach())
    if bool(bad.any()):
        t = int(bad.nonzero()[0, 0])
        written = checkpoint is not None and checkpoint.exists()
        kept = f"the last good checkpoint is {checkpoint}" if written else "no checkpoint was written"
        raise TrainingDiverged(
            f"loss of {what} {t} ({names[t]}) is {float(losses[t].detach())} at step {step}; "
            f"{kept} (try a lower lr)"
        )


class LossGuard:
    """The NaN guard of the training losses (:func:`check_losses`), read without stalling an
    accelerator: on the CPU each step's losses are checked at once; on a CUDA device each step
    queues a finite-check whose one-byte answer is copied to the host behind an event, and the
    host waits for that event (not for the device's whole queue) during the next step, once that
    step's work is queued, so the device runs a step ahead of the host. :meth:`flush` checks what is
    pending; the trainer calls it before every evaluation and checkpoint, so no diverged weights
    are evaluated or saved (the step that diverged has already applied its update, as a step ahead
    implies; the error names that step)."""

    def __init__(
        self, names: Sequence[str], checkpoint: Path | None, what: str = "task", defer: bool | None = None
    ) -> None:
        """``defer``: check a step's losses during the next step (None: off the CPU only)."""
        self.names, self.checkpoint, self.what, self.defer = list(names), checkpoint, what, defer
        self._pending: tuple[Tensor, Tensor, Any, int] | None = None  # losses, finite flag, event, step

    def __call__(self, losses: Tensor, step: int) -> None:
        self.flush()
        losses = losses.detach()
        if not (losses.device.type != "cpu" if self.defer is None else self.defer):
            check_losses(losses, self.names, step, self.checkpoint, self.what)
            return
        finite, event = torch.isfinite(losses).all(), None
        if losses.device.type == "cuda":
            flag = torch.empty((), dtype=torch.bool, pin_memory=True)
            flag.copy_(finite, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            finite = flag
        self._pending = (losses, finite, event, step)

    def flush(self) -> None:
        if self._pending is not None:
            losses, finite, event, step = self._pending
            self._pending = None
            if event is not None:
                event.synchronize()  # this step's flag only, not the work queued after it
            if not bool(finite):
                check_losses(losses, self.names, step, self.checkpoint, self.what)


@dataclass
class BestWeights:
    """The best-on-validation weights of one run so far (lower ``score`` is better)."""

    score: float = math.inf
    step: int = 0
    state: dict[str, Tensor] | None = None

    def offer(self, score: float, step: int, state: Callable[[], dict[str, Tensor]]) -> None:
        """Keep ``state()`` (called only then) if ``score`` beats the best so far."""
        if score < self.score:
            self.score, self.step, self.state = score, step, state()

    def to_dict(self) -> dict[str, Any]:  # the checkpoint's "best" entry
        return {"score": self.score, "step": self.step, "state": self.state}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BestWeights:
        return cls(d["score"], int(d["step"]), d["state"])


class Learner(ABC):
    """What the :class:`Trainer` trains: ``runs`` networks (1, or R stacked trials), each with
    its own run folder, tasks named ``task_names``."""

    runs: int
    cfgs: list[Config]
    #: checkpoints and resume (a stacked group is rerun instead)
    resumable: bool = False

    @abstractmethod
    def train_step(self, step: int) -> Tensor:
        """One optimiser step (the ``step``-th); each run's per-task losses ``[runs, tasks]``."""

    @abstractmethod
    def evaluate(self, split: str) -> list[Scores]:
        """Every run's scores on ``split`` (current weights)."""

    @abstractmethod
    def net(self, r: int, state: dict[str, Tensor] | None = None) -> MultiTaskNet:
        """A network holding run ``r``'s current weights (or ``state``)."""

    @abstractmethod
    def weights(self, r: int) -> dict[str, Tensor]:
        """A copy of run ``r``'s current weights (best-weights selection)."""

    @abstractmethod
    def scores(self, r: int, net: MultiTaskNet, split: str) -> Scores:
        """Run ``r``'s scores of ``net`` on ``split`` (the finished run's test and val)."""

    @abstractmethod
    def names(self, r: int) -> list[str]:
        """Run ``r``'s task names."""

    def train(self) -> None:
        """Training mode (dropout on)."""
        return None

    def flush_checks(self) -> None:
        """Check what the last steps left pending (their :class:`LossGuard`)."""
        return None

    def record_extras(self, steps: int, elapsed: float) -> dict[str, Any]:
        """Entries each ``metrics.jsonl`` record adds (``steps`` trained in ``elapsed`` s)."""
        return {}

    def result_extras(self, r: int, test: Scores) -> dict[str, Any]:
        """Entries run ``r``'s ``result.json`` adds after the standard ones."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} keeps no checkpoint")

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} keeps no checkpoint")


class Trainer:
    """Trains a :class:`Learner` to ``cfg.optim.steps`` into one run folder per run (``config.yaml``,
    ``metrics.jsonl``, ``tb/``, ``checkpoint.pt``, ``best.pt``, ``result.json``)."""

    def __init__(self, learner: Learner, outs: Sequence[Path], logs: Sequence[RunLog],
                 monitors: Sequence[health.Monitor | None], quiet: bool = False) -> None:
        if not learner.runs == len(outs) == len(logs) == len(monitors):
            raise ValueError(f"{learner.runs} runs but {len(outs)} folders, {len(logs)} logs, "
                             f"{len(monitors)} monitors")
        self.learner, self.outs, self.logs, self.monitors = learner, [Path(o) for o in outs], logs, monitors
        self.cfg, self.quiet = learner.cfgs[0], quiet
        self.main = distributed.rank() == 0
        self.step = 0
        self.best = [BestWeights() for _ in outs]

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> None:
        """Write ``checkpoint.pt`` from rank 0 (collective: call it on every rank)."""
        state = {**self.learner.state_dict(), "step": self.step, "best": self.best[0].to_dict(),
                 "config": self.cfg.to_dict()}
        if self.main:
            save_checkpoint(RunDir(self.outs[0]).checkpoint, state)

    def resume(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint read (and checked against the config) by the caller."""
        changed = check_resume(ckpt["config"], self.cfg, int(ckpt["step"]))
        self.learner.load_state_dict(ckpt)
        self.step, self.best[0] = int(ckpt["step"]), BestWeights.from_dict(ckpt["best"])
        run = RunDir(self.outs[0])
        if self.main:
            if changed:
                old = ckpt["config"]
                said = ", ".join(f"{k} {old.get(k)!r} -> {self.cfg.to_dict().get(k)!r}" for k in changed)
                print(f"softorder: resuming with {said} (recorded in config.yaml)", file=sys.stderr)
            # Forget metrics logged after the checkpoint: they will be recomputed identically.
            run.trim_metrics(self.step)
        records = distributed.on_main(run.read_metrics)
        if self.monitors[0] is not None:
            self.monitors[0].restore(records)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Train to ``cfg.optim.steps``; every run's result (on every rank; rank 0 writes the files)."""
        cfg, learner = self.cfg, self.learner
        for log, c in zip(self.logs, learner.cfgs):
            log.open(c, self.step)
        runs = f" ×{learner.runs}" if learner.runs > 1 else ""
        desc = f"{cfg.benchmark}/{cfg.model.ordering}{runs}"
        bar = tqdm(total=cfg.optim.steps, initial=self.step, desc=desc,
                   disable=self.quiet or not self.main or not sys.stderr.isatty(), dynamic_ncols=True)
        acc: Tensor | None = None
        n_acc, start, first = 0, time.perf_counter(), self.step
        learner.train()
        try:
            while self.step < cfg.optim.steps:
                losses = learner.train_step(self.step + 1)
                acc = losses if acc is None else acc + losses
                n_acc += 1
                self.step += 1
                bar.update(1)
                if self.step % cfg.run.eval_every == 0 or self.step == cfg.optim.steps:
                    learner.flush_checks()
                    if self.main:  # the other ranks wait at the barrier below
                        assert acc is not None
                        self.evaluate_and_select(acc / n_acc, time.perf_counter() - start, first, bar)
                    acc, n_acc = None, 0
                    due = self.step % cfg.run.checkpoint_every == 0 or self.step == cfg.optim.steps
                    if learner.resumable and due:
                        self.save()
                    distributed.barrier()
        finally:
            bar.close()
            for log in self.logs:
                log.close()
        elapsed = time.perf_counter() - start
        return distributed.on_main(lambda: [self.finish(r, elapsed) for r in range(learner.runs)])

    def evaluate_and_select(self, train_loss: Tensor, elapsed: float, first: int, bar: Any) -> None:
        vals = self.learner.evaluate("val")
        for r, (log, monitor, best) in enumerate(zip(self.logs, self.monitors, self.best)):
            net = self.learner.net(r)
            rec = Evaluation.of(self.step, elapsed, train_loss[r], vals[r], net)
            if monitor is not None:
                monitor.update(net, rec)
            best.offer(rec.score(self.cfg.run.select), self.step, functools.partial(self.learner.weights, r))
            rec.extras.update(self.learner.record_extras(self.step - first, elapsed))
            log.write(rec.to_dict())
        mean = sum(v.mean_error for v in vals) / len(vals)
        bar.set_postfix(val_err=f"{mean:.3f}", train=f"{float(train_loss.mean()):.3f}")

    def finish(self, r: int, elapsed: float) -> dict[str, Any]:
        """Score run ``r``'s best-on-validation weights on test and validation; write ``best.pt``
        and ``result.json`` (last: its presence marks a finished run)."""
        c, best, learner = self.learner.cfgs[r], self.best[r], self.learner
        self.logs[r].flush(c)
        final = learner.weights(r) if learner.runs == 1 else None  # the net keeps its last weights
        if best.state is None:
            raise RuntimeError(f"{self.outs[r]}: no evaluation gave a finite validation score, so there are "
                               "no best weights")
        net = learner.net(r, best.state)
        with net.core.recording_summary() as core_summary:  # a gated core's spread over test inputs
            test = learner.scores(r, net, "test")
        val = learner.scores(r, net, "val")
        run = RunDir(self.outs[r])
        save_checkpoint(run.best, best.state)
        names = learner.names(r)
        record = RunResult(c.benchmark, c.model.ordering, c.seed, names, best.step, self.step, test, val,
                           elapsed, learner.result_extras(r, test))
        monitor = self.monitors[r]
        record.extras.update(core_summary)
        if monitor is not None:
            record.extras["health"] = monitor.result()
        result = record.to_dict()
        write_json(run.result, result)
        if final is not None:
            learner.net(r, final)
        return result
