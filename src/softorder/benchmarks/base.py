"""A benchmark: where its tasks come from, the net it trains, and its shipped config (a YAML file
next to its module). One module per benchmark registers one :class:`Benchmark` subclass with
:func:`register`; adding a benchmark means adding one file (and one import in ``__init__``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet, conv_net, dense_net
from softorder.train.config import Config
from softorder.train.run import Setup
from softorder.train.sources import TaskBatches, TaskEvaluator


class Benchmark(ABC):
    """The default is a multi-input benchmark of in-memory tasks (one batch per task per step)."""

    name: ClassVar[str]
    #: what the tasks are and where the paper uses them (for the docs and ``--help``)
    summary: ClassVar[str] = ""
    #: the config keys that decide the data (``compare`` reuses loaded data across methods)
    data_keys: ClassVar[tuple[str, ...]] = ("benchmark", "data_dir", "tasks", "seed")
    #: ``compare`` trains the fresh trials of a method as one vectorised model by default
    vectorise: ClassVar[bool] = False
    #: its tasks live in memory as TaskData (False: batches stream from disk)
    in_memory: ClassVar[bool] = True
    #: ``softorder adapt`` can give its runs new tasks (:meth:`new_tasks`)
    adaptable: ClassVar[bool] = False

    @property
    def config_path(self) -> Path:
        """The shipped YAML: ``<name>.yaml`` beside the benchmark's module."""
        return Path(__file__).with_name(f"{self.name}.yaml")

    def max_tasks(self, cfg: Config) -> int | None:
        """The most tasks ``cfg`` may ask for (None: no limit)."""
        return None

    def check(self, cfg: Config) -> None:
        """Refuse a config this benchmark cannot run, before any data is read."""
        most = self.max_tasks(cfg)
        if cfg.tasks is not None and most is not None and cfg.tasks > most:
            raise ValueError(f"tasks must be in 1..{most} for {self.name}, got {cfg.tasks}")

    def check_run(self, cfg: Config, resume: bool) -> None:
        """Checks before a run touches its folder (default: :meth:`check`)."""
        self.check(cfg)

    @abstractmethod
    def load_tasks(self, cfg: Config) -> list[TaskData]:
        """The tasks of ``cfg`` with their train / val / test splits (seeded by ``cfg.seed``)."""

    def build_net(self, cfg: Config, tasks: Sequence[TaskData]) -> MultiTaskNet:
        """The model of ``cfg`` for these tasks: images get the conv net, vectors the dense net."""
        classes = [t.num_classes for t in tasks]
        common: dict[str, Any] = dict(
            num_layers=cfg.num_layers, depth=cfg.depth, ordering=cfg.ordering, dropout=cfg.dropout,
            seed=cfg.seed, init=cfg.init, temperature=cfg.temperature, soft_norm=cfg.soft_norm,
        )
        if len(tasks[0].input_shape) == 3:
            return conv_net(classes, image_shape=tasks[0].input_shape, channels=cfg.channels,
                            padding=cfg.padding, **common)
        return dense_net([t.in_features for t in tasks], classes, width=cfg.width, encoder=cfg.encoder,
                         binary=[t.binary for t in tasks], **common)

    def setup(self, cfg: Config, tasks: Sequence[TaskData] | None = None, net: MultiTaskNet | None = None,
              resume: bool = False) -> Setup:
        """What one run trains: the tasks (loaded unless given), the net (built from the seed
        unless given), one batch per task per step, scored on the tasks' splits."""
        if net is None:
            torch.manual_seed(cfg.seed)
            tasks = list(tasks) if tasks is not None else self.load_tasks(cfg)
            torch.manual_seed(cfg.seed)
            net = self.build_net(cfg, tasks)
        elif tasks is None:
            raise ValueError("a given net needs its tasks")
        tasks = list(tasks)
        names = [t.name for t in tasks]
        return Setup(net, TaskBatches(tasks, cfg.batch_size, cfg.seed), TaskEvaluator(tasks, cfg.precision),
                     names, probe=tasks)

    def new_tasks(self, source: Config, num_new: int, skip: int = 0, data_dir: str | None = None,
                  seed: int = 0) -> list[TaskData]:
        """Tasks a run of ``source`` did not train on (``softorder adapt``, Sec. 6)."""
        raise ValueError(f"adapt supports the benchmarks {', '.join(adaptable())}, not {self.name!r}")

    def adapt_overrides(self, source: Config) -> dict[str, Any]:
        """Config keys the adapted runs of a ``source`` run set (e.g. where their tasks came from)."""
        return {}


_REGISTRY: dict[str, Benchmark] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: make the benchmark known by its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"benchmark {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> Benchmark:
    """The registered benchmark ``name``; an unknown name lists the choices."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    return list(_REGISTRY)


def adaptable() -> list[str]:
    """The benchmarks whose runs ``softorder adapt`` can give new tasks."""
    return [n for n, b in _REGISTRY.items() if b.adaptable]


def renamed(tasks: Sequence[TaskData], prefix: str) -> list[TaskData]:
    return [dataclasses.replace(t, name=f"{prefix}{t.name}") for t in tasks]
