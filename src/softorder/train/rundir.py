"""The run folder: its file names, and the one place that starts, refuses or cleans a run in it.

A run folder holds ``config.yaml``, ``metrics.jsonl`` (one validation record per line), ``tb/``
(TensorBoard), ``checkpoint.pt``, ``best.pt`` and ``result.json`` (written last: a finished run);
a run on the user's own files also ``preprocessing.json`` (written with ``config.yaml``: what
``softorder predict`` applies to new inputs).
Every trainer and ``compare`` go through :class:`RunDir`: a fresh run never appends to another
run's files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from softorder.atomic import atomic_write_bytes, write_json
from softorder.train.yaml12 import dump_yaml

#: The files of a comparison folder (``softorder compare``).
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


class RunDir:
    """The files of one run under ``path``."""

    CONFIG = "config.yaml"
    METRICS = "metrics.jsonl"
    TB = "tb"
    CHECKPOINT = "checkpoint.pt"
    BEST = "best.pt"
    RESULT = "result.json"
    PREPROCESSING = "preprocessing.json"
    FILES = (CONFIG, PREPROCESSING, METRICS, TB, CHECKPOINT, BEST, RESULT)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def tb(self) -> Path:
        return self.path / self.TB

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def result(self) -> Path:
        return self.path / self.RESULT

    @property
    def preprocessing(self) -> Path:
        return self.path / self.PREPROCESSING

    def leftovers(self) -> list[str]:
        """The run files already in the folder."""
        return [name for name in self.FILES if (self.path / name).exists()]

    def finished(self) -> bool:
        return self.result.is_file()

    def started(self) -> bool:
        """A finished run, or one with a checkpoint to resume from."""
        return self.finished() or self.checkpoint.is_file()

    # -- starting a run ----------------------------------------------------------------------
    def check_writable(self, create: bool = True) -> None:
        """The folder exists (``create``: made if needed) and can be written; else a one-line
        error. With ``create=False`` nothing is made: the nearest existing folder must be writable."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"run folder {self.path} is a file; choose a folder for --out")
        if not create:
            there = next(p for p in (self.path, *self.path.parents) if p.exists())
            if not there.is_dir() or not os.access(there, os.W_OK | os.X_OK):
                raise ValueError(f"cannot create run folder {self.path} ({there} is not writable)")
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(
                f"cannot create run folder {self.path} ({e.strerror}); choose another --out"
            ) from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise ValueError(f"run folder {self.path} is not writable; choose another --out")

    def start_fresh(self, clean: bool = False) -> None:
        """Prepare the folder for a new run. A folder that holds another run's files is refused
        (``clean=False``: the user's ``--out``) or emptied of them (``clean=True``: a folder that
        its caller owns, such as a ``compare`` trial without a checkpoint to resume). Nothing is
        created here: the folder appears when the run writes its first file."""
        self.check_writable(create=False)
        found = self.leftovers()
        if not found:
            return
        if not clean:
            hint = (
                f"continue it with `softorder train --resume {self.path}`, choose another --out, or delete it"
                if self.checkpoint.is_file()
                else "choose another --out, or delete the folder"
            )
            raise FileExistsError(f"{self.path} already holds a run ({', '.join(found)}); {hint}")
        for name in found:
            p = self.path / name
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def write_config(self, cfg_dict: dict[str, Any], preprocessing: dict[str, Any] | None = None) -> None:
        """``config.yaml`` and, for tasks of the user's own files, ``preprocessing.json``."""
        if preprocessing is not None:
            write_json(self.preprocessing, preprocessing)
        atomic_write_bytes(self.config, dump_yaml(cfg_dict).encode())

    def read_preprocessing(self) -> dict[str, Any]:
        """What ``preprocessing.json`` records (a FileNotFoundError when the run has none)."""
        if not self.preprocessing.is_file():
            raise FileNotFoundError(f"{self.path} holds no {self.PREPROCESSING}")
        try:
            data = json.loads(self.preprocessing.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{self.preprocessing} is damaged (not JSON); train the run again") from None
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
            raise ValueError(f"{self.preprocessing} holds no task preprocessing; train the run again")
        return data

    # -- metrics -----------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``. A last line cut by a kill is skipped; a damaged line
        before it is an error naming the file and line."""
        if not self.metrics.is_file():
            return []
        lines = self.metrics.read_text().splitlines()
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # cut by a kill while it was written
                    break
                raise ValueError(f"{self.metrics}: line {i + 1} is not a JSON record") from None
        return out

    def remove_stale_temps(self) -> list[Path]:
        """Delete the temp files a killed writer left (``.<name>.<hex>.tmp``: an atomic write that
        never reached its rename; the file it would have replaced is intact). Called on resume,
        when no writer of this run is alive; returns what it removed."""
        stale = sorted(self.path.glob(".*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def trim_metrics(self, step: int) -> None:
        """Keep the records up to ``step`` (a resume recomputes the later ones), atomically."""
        if self.metrics.exists():
            self.write_metrics([r for r in self.read_metrics() if r["step"] <= step])

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        atomic_write_bytes(self.metrics, "".join(json.dumps(r) + "\n" for r in records).encode())
