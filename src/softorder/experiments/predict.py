"""Predictions of a finished run on new inputs: :func:`load_run` (``softorder.load_run``) and
``softorder predict`` (``predict_cli.py``).

A run of a benchmark on the user's own files (``tabular``, ``imagefolder``) keeps in its folder
what turns a raw input into a network row (``preprocessing.json``: statistics, category maps,
class names, image size) and its best-on-validation weights (``best.pt``). :func:`load_run`
rebuilds the run's network with its benchmark's own builder, loads those weights, and applies
that preprocessing to new CSV rows or image files: one row of class probabilities per input, the
predicted label in the user's own class names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from softorder import benchmarks
from softorder.atomic import atomic_write_bytes
from softorder.data.tasks import Preprocessing, TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train.config import Config
from softorder.train.rundir import RunDir


@dataclass
class Predictions:
    """One task's predictions: per input its id, the class probabilities and (``labels``) the most
    probable class's name; ``notes`` say what was ignored in the input."""

    task: str
    ids: list[str]
    classes: list[str]
    probabilities: Tensor
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.probabilities.argmax(1).tolist()] if self.ids else []

    def frame(self) -> pd.DataFrame:
        """``id``, ``label``, then ``p_<class>`` for every class, one row per input."""
        table = pd.DataFrame({"id": self.ids, "label": self.labels})
        for c, name in enumerate(self.classes):
            table[f"p_{name}"] = self.probabilities[:, c].numpy()
        return table

    def write_csv(self, path: str | Path) -> None:
        """The CSV of :meth:`frame`, written atomically (never half-written)."""
        atomic_write_bytes(Path(path), self.frame().to_csv(index=False).encode())


class TrainedRun:
    """A finished run, ready to predict: its ``config``, its ``net`` (best-on-validation weights,
    eval mode, on the CPU), its ``task_names`` and each task's ``preprocessing``."""

    def __init__(self, path: Path, config: Config, net: MultiTaskNet,
                 preprocessing: dict[str, Preprocessing]) -> None:
        self.path, self.config, self.net = path, config, net
        self.preprocessing = preprocessing
        self.task_names = list(preprocessing)

    def task_index(self, task: str) -> int:
        if task not in self.preprocessing:
            names = ", ".join(self.task_names)
            raise ValueError(f"unknown task {task!r}; the tasks of {self.path} are {names}")
        return self.task_names.index(task)

    @torch.no_grad()
    def probabilities(self, task: str, x: Tensor, chunk: int = 1024) -> Tensor:
        """Class probabilities ``[n, classes]`` of network input rows ``x`` of ``task``."""
        t = self.task_index(task)
        parts = [self.net([x[i : i + chunk]], tasks=[t])[0].float() for i in range(0, x.shape[0], chunk)]
        logits = torch.cat(parts) if parts else x.new_zeros((0, len(self.preprocessing[task].classes)))
        if self.net.decoders.binary[t]:
            p = torch.sigmoid(logits.reshape(-1))
            return torch.stack([1 - p, p], 1)
        return torch.softmax(logits, 1)

    def predict(self, task: str, data: Any) -> Predictions:
        """``task``'s predictions on ``data``: a CSV file or pandas table (tabular runs), an image
        file, a folder of images or a list of image files (imagefolder runs)."""
        self.task_index(task)
        prep = self.preprocessing[task]
        enc = prep.encode(data)
        return Predictions(task, enc.ids, list(prep.classes), self.probabilities(task, enc.x), enc.notes)


def load_run(run_dir: str | Path) -> TrainedRun:
    """The finished run in ``run_dir`` with its preprocessing and best weights; a one-line error
    for a folder without a finished run, or a run of a benchmark whose tasks keep no preprocessing."""
    path = Path(run_dir)
    run = RunDir(path)
    if not run.config.is_file():
        raise FileNotFoundError(
            f"{path} holds no run (no {RunDir.CONFIG}); give a folder written by softorder train"
        )
    cfg = benchmarks.load_config(run.config, saved=True)
    bench = benchmarks.get(cfg.benchmark)
    kind = bench.preprocessing
    if kind is None:
        raise ValueError(
            f"{path} is a run of {cfg.benchmark}, which keeps no preprocessing for new inputs; "
            f"softorder predict takes runs of {', '.join(benchmarks.predictable())}"
        )
    if not run.best.is_file():
        raise FileNotFoundError(
            f"{run.best} does not exist: the run in {path} has not finished; finish it with "
            f"`softorder train --resume {path}`"
        )
    try:
        recorded = run.read_preprocessing()["tasks"]
        preps = {str(name): kind.from_dict(d) for name, d in recorded.items()}
    except (KeyError, TypeError) as e:
        said = f"{type(e).__name__}: {e}"
        raise ValueError(f"{run.preprocessing} is damaged ({said}); train the run again") from None
    net = bench.build_net(cfg, [_shape_only(name, p) for name, p in preps.items()])
    try:
        state = torch.load(run.best, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as e:  # truncated file, or weights of another network
        said = " ".join(str(e).split())[:200]
        raise ValueError(f"{run.best} does not fit the run's network ({said}); train the run again") from None
    net.eval()
    return TrainedRun(path, cfg, net, preps)


def _shape_only(name: str, prep: Preprocessing) -> TaskData:
    """A task that stands in for the run's task when its data is not at hand: what a
    benchmark's net builder reads of it (input shape, classes, the training rows' statistics;
    :meth:`~softorder.data.tasks.Preprocessing.training_stand_in`), one zero row per other split."""
    x = prep.training_stand_in()
    zero, labels = torch.zeros((1, *prep.input_shape)), torch.zeros(x.shape[0], dtype=torch.int64)
    none = torch.zeros(1, dtype=torch.int64)
    return TaskData(name, len(prep.classes), x, labels, zero, none, zero, none, preprocessing=prep)


def choose_task(run: TrainedRun, task: str | None) -> str:
    """The task to predict: ``task``, or the run's only task."""
    if task is not None:
        run.task_index(task)
        return task
    if len(run.task_names) == 1:
        return run.task_names[0]
    raise ValueError(f"{run.path} has the tasks {', '.join(run.task_names)}; choose one with --task NAME")

