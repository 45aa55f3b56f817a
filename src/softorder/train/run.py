"""One run from start to finish: the process group, the run folder (fresh, cleaned or resumed)
and the :class:`~softorder.train.trainer.Trainer`. What to train comes from a benchmark as a
:class:`Setup` (``softorder.benchmarks`` builds it), so this layer never asks which benchmark runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train import distributed, health
from softorder.train.checkpoint import load_checkpoint
from softorder.train.config import Config, check_resume
from softorder.train.logs import LiveLog, NullLog
from softorder.train.net_learner import NetLearner
from softorder.train.rundir import RunDir
from softorder.train.sources import BatchSource, Evaluator
from softorder.train.trainer import Trainer


@dataclass
class Setup:
    """What one run trains: the net, its batches, how a split is scored, the task names, the
    tasks whose validation rows probe the run's health (None: no health monitor), and what the run
    folder records of the tasks' preprocessing (:func:`softorder.data.tasks.preprocessing_of`)."""

    net: MultiTaskNet
    source: BatchSource
    evaluator: Evaluator
    task_names: list[str]
    probe: Sequence[TaskData] | health.Probe | None = None
    preprocessing: dict[str, Any] | None = None


def train_run(
    cfg: Config,
    out: str | Path,
    setup: Callable[[bool], Setup],
    resume: bool = False,
    quiet: bool = False,
    clean: bool = False,
) -> dict[str, Any]:
    """Train one run of ``cfg`` into ``out``; returns the result (also in ``out/result.json``).

    ``setup(resume)`` reads the data and builds the net (after the folder and a checkpoint to
    resume are checked, so a bad folder fails before any data is read). A fresh run refuses a
    folder that holds another run's files, or (``clean=True``, for folders the caller owns)
    removes them first. Launched by torchrun with several processes, this joins the process group
    and trains with DistributedDataParallel (every rank returns rank 0's result; only rank 0
    writes ``out``)."""
    distributed.require_device(cfg.run.device)
    created, finished = distributed.setup(cfg.run.device), False
    try:
        # The trainer and its DDP model (which holds the process group) live in _train only, so
        # they are gone when teardown frees the group (also when _train raised: its frames go).
        result = _train(cfg, Path(out), setup, resume, quiet, clean)
        finished = True
    except BaseException as e:
        traceback.clear_frames(e.__traceback__)
        raise
    finally:
        distributed.teardown(created, finished)
    return result


def _train(
    cfg: Config, out: Path, setup: Callable[[bool], Setup], resume: bool, quiet: bool, clean: bool
) -> dict[str, Any]:
    out = Path(distributed.broadcast_object(str(out)))  # rank 0's directory (default names hold a time)
    run = RunDir(out)
    # the checkpoint is read (and checked against cfg) once, on rank 0, before any data
    ckpt = distributed.on_main(lambda: _check_resumable(run, cfg) if resume else run.start_fresh(clean))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    s = setup(resume)
    learner = NetLearner(cfg, s.net, s.source, s.evaluator, s.task_names, checkpoint=run.checkpoint)
    log = LiveLog(out, s.task_names, s.preprocessing) if distributed.rank() == 0 else NullLog()
    monitor = health.Monitor(s.probe, cfg.optim.steps, name=str(out)) if s.probe is not None else None
    trainer = Trainer(learner, [out], [log], [monitor], quiet=quiet)
    if ckpt is not None:
        trainer.resume(ckpt)
    return trainer.run()[0]


def _check_resumable(run: RunDir, cfg: Config) -> dict[str, Any]:
    """Before any data is read: the checkpoint, which exists and whose config ``cfg`` changes
    only in what a resume can change."""
    run.check_writable()
    ckpt = load_checkpoint(run.checkpoint)
    check_resume(ckpt["config"], cfg, int(ckpt["step"]))
    run.remove_stale_temps()  # a kill during a checkpoint write leaves its temp file; the old one is whole
    return ckpt
