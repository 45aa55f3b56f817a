"""The ten UCI datasets of Sec. 4.2 as ten tasks; learned 32-unit encoders per task."""

from __future__ import annotations

import math
from dataclasses import dataclass

from softorder.benchmarks.base import Benchmark, register
from softorder.data.tasks import TaskData
from softorder.data.uci import UCI_DATASETS, load_uci
from softorder.train.config import Config, DataConfig, key


@dataclass
class UCIData(DataConfig):
    fractions: list[float] = key((0.6, 0.2, 0.2), "floats", gt=0, lt=1)  # train / val / test per dataset

    def check(self) -> None:
        if len(self.fractions) != 3 or not math.isclose(sum(self.fractions), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"fractions must be three numbers (train, validation, test), each in (0, 1), summing to 1; "
                f"got {self.fractions}"
            )


@register
class UCI(Benchmark):
    name = "uci"
    summary = "ten UCI datasets; learned 32-unit encoders (Sec. 4.2)"
    data_section = UCIData
    vectorise = True

    def max_tasks(self, cfg: Config) -> int:
        return len(UCI_DATASETS)

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        d = cfg.data
        assert isinstance(d, UCIData)
        names = UCI_DATASETS[: d.tasks] if d.tasks else UCI_DATASETS
        return load_uci(d.data_dir, seed=cfg.seed, fractions=tuple(d.fractions), datasets=names)
