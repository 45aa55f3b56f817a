"""Where a run's validation records go: ``metrics.jsonl`` (one JSON line per evaluation) and
TensorBoard (``tb/``), both in the run folder (:class:`~softorder.train.rundir.RunDir`).

:class:`LiveLog` writes each record as it comes (a run that may be resumed); :class:`BufferedLog`
keeps them and writes the folder at the end (a stacked trial, which is rerun rather than resumed,
so an interrupted group leaves no half-written run); :class:`NullLog` is a non-zero rank's.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from torch.utils.tensorboard import SummaryWriter

from softorder.train import health
from softorder.train.config import Config
from softorder.train.rundir import RunDir


def log_tensorboard(writer: Any, rec: dict[str, Any], task_names: Sequence[str]) -> None:
    """One validation record (``metrics.jsonl`` line) as TensorBoard scalars."""
    step = rec["step"]
    writer.add_scalar("val/mean_error", rec["mean_val_error"], step)
    writer.add_scalar("val/mean_loss", rec["mean_val_loss"], step)
    writer.add_scalar("train/mean_loss", sum(rec["train_loss"]) / len(rec["train_loss"]), step)
    for t, name in enumerate(task_names):
        writer.add_scalar(f"val_error/{name}", rec["val_error"][t], step)
        writer.add_scalar(f"train_loss/{name}", rec["train_loss"][t], step)
    if rec.get("health"):
        health.log_tensorboard(writer, rec["health"], step)


class RunLog(ABC):
    """The record sink of one run."""

    @abstractmethod
    def open(self, cfg: Config, step: int) -> None:
        """Training starts (or resumes) at ``step``."""

    @abstractmethod
    def write(self, rec: dict[str, Any]) -> None: ...

    def close(self) -> None:
        """Training stopped (also on an error)."""
        return None

    def flush(self, cfg: Config) -> None:
        """The run has finished training; its result is written next."""
        return None


class NullLog(RunLog):
    def open(self, cfg: Config, step: int) -> None:
        pass

    def write(self, rec: dict[str, Any]) -> None:
        pass


class LiveLog(RunLog):
    """Writes ``config.yaml`` (and the tasks' ``preprocessing``, when they have one) at the start
    (a resume records what it changed), then every record."""

    def __init__(
        self, out: Path, task_names: Sequence[str], preprocessing: dict[str, Any] | None = None
    ) -> None:
        self.run, self.names, self.preprocessing = RunDir(out), list(task_names), preprocessing
        self._file: IO[str] | None = None
        self._writer: SummaryWriter | None = None

    def open(self, cfg: Config, step: int) -> None:
        self.run.write_config(cfg.to_dict(), self.preprocessing)
        self._writer = SummaryWriter(str(self.run.tb), purge_step=step + 1 if step else None)
        self._file = open(self.run.metrics, "a")  # noqa: SIM115 (closed in close())

    def write(self, rec: dict[str, Any]) -> None:
        assert self._file is not None and self._writer is not None, "write() before open()"
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()
        log_tensorboard(self._writer, rec, self.names)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
        self._file = self._writer = None


class BufferedLog(RunLog):
    """Keeps the records; :meth:`flush` writes the whole folder (removing leftovers of an
    interrupted attempt, which kept no checkpoint)."""

    def __init__(
        self, out: Path, task_names: Sequence[str], preprocessing: dict[str, Any] | None = None
    ) -> None:
        self.run, self.names, self.preprocessing = RunDir(out), list(task_names), preprocessing
        self.records: list[dict[str, Any]] = []

    def open(self, cfg: Config, step: int) -> None:
        pass

    def write(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)

    def flush(self, cfg: Config) -> None:
        self.run.start_fresh(clean=True)
        self.run.write_config(cfg.to_dict(), self.preprocessing)
        self.run.write_metrics(self.records)
        with SummaryWriter(str(self.run.tb)) as writer:
            for rec in self.records:
                log_tensorboard(writer, rec, self.names)
