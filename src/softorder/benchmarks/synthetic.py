"""Random related teacher tasks (no download): for tests, demos and the analysis experiments."""

from __future__ import annotations

from softorder.benchmarks.base import Benchmark, register, renamed
from softorder.data.synthetic import make_synthetic
from softorder.data.tasks import TaskData
from softorder.train.config import Config


@register
class Synthetic(Benchmark):
    name = "synthetic"
    summary = "random related teacher tasks (no download; tests and demos)"
    vectorise = True
    adaptable = True

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        return make_synthetic(num_tasks=cfg.data.tasks or 4, seed=cfg.seed)

    def new_tasks(self, source: Config, num_new: int, skip: int = 0, data_dir: str | None = None,
                  seed: int = 0) -> list[TaskData]:
        """``num_new`` fresh teacher tasks drawn from another seed."""
        return renamed(make_synthetic(num_tasks=num_new, seed=seed + 1000 + skip), "new-")
