"""The ten UCI datasets of Sec. 4.2 as ten tasks; learned 32-unit encoders per task."""

from __future__ import annotations

from typing import ClassVar

from softorder.benchmarks.base import Benchmark, register
from softorder.data.tasks import TaskData
from softorder.data.uci import UCI_DATASETS, load_uci
from softorder.train.config import Config


@register
class UCI(Benchmark):
    name = "uci"
    summary = "ten UCI datasets; learned 32-unit encoders (Sec. 4.2)"
    data_keys: ClassVar[tuple[str, ...]] = (*Benchmark.data_keys, "fractions")
    vectorise = True

    def max_tasks(self, cfg: Config) -> int:
        return len(UCI_DATASETS)

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        names = UCI_DATASETS[: cfg.tasks] if cfg.tasks else UCI_DATASETS
        return load_uci(cfg.data_dir, seed=cfg.seed, fractions=tuple(cfg.fractions), datasets=names)
