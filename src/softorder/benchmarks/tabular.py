"""Your own tabular tasks: one CSV file per task in ``--data-dir`` (``softorder.data.tabular``).

Multi-input mode: every task gets its own learned dense encoder sized from its columns (after
one-hot encoding), the shared core, and a decoder with its number of classes (Sec. 3.3, as UCI).
The tasks' preprocessing (statistics, category maps, class names) goes into each run folder's
``preprocessing.json`` for ``softorder predict``.
"""

from __future__ import annotations

from dataclasses import dataclass

from softorder.benchmarks.base import Benchmark, register
from softorder.benchmarks.uci import UCIData
from softorder.data.tabular import TablePreprocessing, load_tabular
from softorder.data.tasks import TaskData
from softorder.train.config import Config, key


@dataclass
class TabularData(UCIData):
    """The UCI splits (``fractions``) and the label column of every file that ``tasks.yaml``
    does not name otherwise."""

    label_column: str = key("label", "str")


def data_dir(cfg: Config, what: str) -> str:
    """The user's data folder, which these benchmarks cannot do without."""
    if not cfg.data.data_dir:
        raise ValueError(f"{cfg.benchmark} reads your own data: give --data-dir DIR ({what})")
    return cfg.data.data_dir


@register
class Tabular(Benchmark):
    name = "tabular"
    summary = "your own tasks: one CSV file per task in --data-dir (docs/your-data.md)"
    data_section = TabularData
    preprocessing = TablePreprocessing
    vectorise = True

    def load_tasks(self, cfg: Config) -> list[TaskData]:
        d = cfg.data
        assert isinstance(d, TabularData)
        folder = data_dir(cfg, "a folder with one CSV file per task")
        return load_tabular(folder, d.label_column, d.fractions, cfg.seed, d.tasks)
