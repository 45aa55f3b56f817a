"""A benchmark: where its tasks come from, the net it trains, and its shipped config (a YAML file
next to its module). One module per benchmark registers one :class:`Benchmark` subclass with
:func:`register`; adding a benchmark means adding one file (and one import in ``__init__``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from softorder.data.tasks import Preprocessing, TaskData, preprocessing_of
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock, he_init, sequence_view
from softorder.nn.learned import Anneal
from softorder.nn.module_bank import ModuleBank
from softorder.nn.network import BankFactory, MultiTaskNet, dense_net
from softorder.train.config import Config, DataConfig, ModelConfig, register_sections
from softorder.train.run import Setup
from softorder.train.sources import TaskBatches, TaskEvaluator


class Benchmark(ABC):
    """The default is a multi-input benchmark of in-memory tasks (one batch per task per step)."""

    name: ClassVar[str]
    #: what the tasks are and where the paper uses them (for the docs and ``--help``)
    summary: ClassVar[str] = ""
    #: ``compare`` trains the fresh trials of a method as one vectorised model by default
    vectorise: ClassVar[bool] = False
    #: its tasks live in memory as TaskData (False: batches stream from disk)
    in_memory: ClassVar[bool] = True
    #: ``softorder adapt`` can give its runs new tasks (:meth:`new_tasks`)
    adaptable: ClassVar[bool] = False
    #: how its tasks' raw inputs become rows, recorded in its runs' folders (``softorder predict``
    #: takes runs of the benchmarks that have one: their tasks come from the user's own files)
    preprocessing: ClassVar[type[Preprocessing] | None] = None
    #: the config sections of its model and its data (subclasses add the benchmark's own keys)
    model_section: ClassVar[type[ModelConfig]] = ModelConfig
    data_section: ClassVar[type[DataConfig]] = DataConfig
    #: the values of the ``core`` key that fit its data, and what its data is (for the error)
    cores: ClassVar[tuple[str, ...]] = ("dense", "resmlp", "transformer")
    data_kind: ClassVar[str] = "its tasks' rows are feature vectors"

    @property
    def config_path(self) -> Path:
        """The shipped YAML: ``<name>.yaml`` beside the benchmark's module."""
        return Path(__file__).with_name(f"{self.name}.yaml")

    def max_tasks(self, cfg: Config) -> int | None:
        """The most tasks ``cfg`` may ask for (None: no limit)."""
        return None

    def check(self, cfg: Config) -> None:
        """Refuse a config this benchmark cannot run, before any data is read."""
        most, tasks = self.max_tasks(cfg), cfg.data.tasks
        if tasks is not None and most is not None and tasks > most:
            raise ValueError(f"tasks must be in 1..{most} for {self.name}, got {tasks}")
        if cfg.model.core not in self.cores:
            raise ValueError(
                f"core {cfg.model.core} does not fit {self.name} ({self.data_kind}): choose core "
                f"{' | '.join(self.cores)}"
            )

    def check_run(self, cfg: Config, resume: bool) -> None:
        """Checks before a run touches its folder (default: :meth:`check`)."""
        self.check(cfg)

    @abstractmethod
    def load_tasks(self, cfg: Config) -> list[TaskData]:
        """The tasks of ``cfg`` with their train / val / test splits (seeded by ``cfg.seed``)."""

    def build_net(self, cfg: Config, tasks: Sequence[TaskData]) -> MultiTaskNet:
        """The model of ``cfg`` for these tasks: per-task dense encoders and decoders around the
        dense core (Sec. 3.3; image benchmarks override it)."""
        m = cfg.model
        return dense_net([t.in_features for t in tasks], [t.num_classes for t in tasks], width=m.width,
                         encoder=m.encoder, binary=[t.binary for t in tasks], bank=core_bank(cfg, m.width),
                         **core_options(cfg))

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
        batches = TaskBatches(tasks, cfg.optim.batch_size, cfg.seed)
        return Setup(net, batches, TaskEvaluator(tasks, cfg.run.precision), names, probe=tasks,
                     preprocessing=preprocessing_of(tasks))

    def new_tasks(self, source: Config, num_new: int, skip: int = 0, data_dir: str | None = None,
                  seed: int = 0) -> list[TaskData]:
        """Tasks a run of ``source`` did not train on (``softorder adapt``, Sec. 6)."""
        raise ValueError(f"adapt supports the benchmarks {', '.join(adaptable())}, not {self.name!r}")

    def adapt_overrides(self, source: Config) -> dict[str, Any]:
        """Config keys the adapted runs of a ``source`` run set (e.g. where their tasks came from)."""
        return {}


def core_options(cfg: Config) -> dict[str, Any]:
    """The builders' arguments for the ordered core, from the model section (Sec. 3.3)."""
    m = cfg.model
    anneal = Anneal(m.route_tau_start, m.route_tau_end, max(1, round(m.route_anneal * cfg.optim.steps)))
    return dict(num_layers=m.num_layers, depth=m.depth, ordering=m.ordering, dropout=m.dropout, seed=cfg.seed,
                init=m.init, temperature=m.temperature, soft_norm=m.soft_norm, depth_norm=m.depth_norm,
                gate_hidden=m.gate_hidden, anneal=anneal)


def core_bank(cfg: Config, features: int) -> BankFactory | None:
    """The shared layers the ``core`` key names, on rows of ``features`` (a dense core's width, a
    conv core's channels), with the model's ``dropout`` and ``init``: a factory of
    :class:`~softorder.nn.ModuleBank` of :mod:`softorder.nn.blocks`; None for the builder's own
    bank (``dense``, ``conv``), so that those runs are what they always were."""
    m, d = cfg.model, features // cfg.model.tokens
    makers: dict[str, Callable[[], torch.nn.Module]] = {
        "resmlp": lambda: ResidualMLP(features, dropout=m.dropout),
        "resconv": lambda: ResidualConv(features, pool=2, dropout=m.dropout),
        "transformer": lambda: sequence_view(TransformerBlock(d, m.heads, dropout=m.dropout), m.tokens, d),
    }
    if m.core not in makers:
        return None
    make = makers[m.core]

    def bank(n: int) -> ModuleBank:
        blocks = [make() for _ in range(n)]
        return ModuleBank([he_init(b) for b in blocks] if m.init == "he" else blocks)

    return bank


_REGISTRY: dict[str, Benchmark] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Class decorator: make the benchmark known by its ``name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"benchmark {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls()
    register_sections(cls.name, cls.model_section, cls.data_section)
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


def predictable() -> list[str]:
    """The benchmarks whose runs ``softorder predict`` takes (their tasks record preprocessing)."""
    return [n for n, b in _REGISTRY.items() if b.preprocessing is not None]


def renamed(tasks: Sequence[TaskData], prefix: str) -> list[TaskData]:
    return [dataclasses.replace(t, name=f"{prefix}{t.name}") for t in tasks]
