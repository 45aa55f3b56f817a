"""Tasks from the user's own CSV files, one file per task (the ``tabular`` benchmark).

A folder holds one CSV file per task, named after it (``heart.csv`` is the task ``heart``), each
with a header row and a label column (``label`` unless told otherwise). An optional
``tasks.yaml`` in the folder names a task's ``file`` and ``label_column`` when they differ; its
tasks come first, in its order, then the other CSV files by name::

    heart:
      file: processed_cleveland.csv
      label_column: num

Files are read with pandas, every cell as text; empty cells, ``?`` and ``NA`` are missing. A
column is numeric when every value present in the file is a finite number, else categorical.
:class:`TablePreprocessing` is fitted on the task's TRAINING rows only:

* numeric: a missing value becomes the training median, then ``(x - mean) / std`` with the
  training mean and standard deviation (std 1 for a constant column), as for UCI;
* categorical: a missing value becomes the most frequent training category, then one-hot over the
  categories seen in training; any other category is all zeros. The one-hot layout has a slot for
  every category of the file (a slot no training row has stays zero), so trials with other splits
  build networks of one shape (``compare`` trains them as one vectorised model).

Labels may be text or numbers; the classes are sorted (by value when all are numbers). Splits are
stratified per task from the seed exactly as for UCI (:mod:`softorder.data.splits`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import yaml

from softorder.data.splits import check_classes, split_rows
from softorder.data.tasks import Encoded, Preprocessing, TaskData

MISSING = ("", "?", "NA")
TASKS_FILE = "tasks.yaml"
_TASK_KEYS = ("file", "label_column")


def read_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A CSV file (or a table given in Python) with every cell as stripped text and every missing
    cell (empty, ``?``, ``NA``) as NaN; an empty file or one without data rows is an error."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        where = "the table"
    else:
        where = str(source)
        if not Path(source).is_file():
            what = "is a folder" if Path(source).is_dir() else "does not exist"
            raise FileNotFoundError(f"{where} {what}; give a CSV file with a header row")
        try:
            frame = pd.read_csv(source, dtype=str, na_values=list(MISSING), keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{where} is empty; a task file needs a header row and one row per example"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{where} is not a readable CSV file ({first}); fix or re-export it") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[0] == 0:
        raise ValueError(f"{where} has a header but no data rows; add one row per example")
    for c in frame.columns:
        s = frame[c].map(lambda v: np.nan if _missing(v) else str(v).strip()).astype(object)
        frame[c] = s.where(~s.isin(MISSING), np.nan)
    return frame


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _numbers(s: pd.Series) -> np.ndarray:
    """The column as float64, NaN where a cell is missing or not a finite number."""
    x = np.array(pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    x[~np.isfinite(x)] = np.nan
    return x


def label_order(labels: Sequence[str]) -> list[str]:
    """The distinct labels sorted: by value when every one is a number, else as text."""
    distinct = sorted(set(labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct


@dataclass
class Column:
    """One input column: ``numeric`` (imputed with ``fill``, standardised with ``mean``, ``std``)
    or ``categorical`` (``fill`` for a missing cell; one-hot slots ``categories``, of which the
    ``seen`` ones were in training rows and the others stay zero)."""

    name: str
    kind: str
    fill: float | str | None
    mean: float = 0.0
    std: float = 1.0
    categories: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories)

    @classmethod
    def fit(cls, name: str, cells: pd.Series, train: np.ndarray) -> Column:
        """The column's type from every row, its statistics from the ``train`` rows."""
        x = _numbers(cells)
        present = cells.notna().to_numpy()
        if not (present & np.isnan(x)).any():  # every present value is a number (or none is present)
            t = x[train][~np.isnan(x[train])]
            median = float(np.median(t)) if t.size else 0.0
            filled = np.where(np.isnan(x[train]), median, x[train])
            std = float(filled.std())
            return cls(name, "numeric", median, float(filled.mean()), std if std > 1e-12 else 1.0)
        counts = cells.iloc[train].dropna().value_counts()
        seen = sorted(map(str, counts.index))
        fill = min(seen, key=lambda c: (-int(counts[c]), c)) if seen else None  # the most frequent
        return cls(name, "categorical", fill, categories=sorted(set(cells.dropna())), seen=seen)

    def to_dict(self) -> dict[str, Any]:
        """The column's entries (a numeric column has no categories, a categorical one no mean)."""
        d = dataclasses.asdict(self)
        for k in ("categories", "seen") if self.kind == "numeric" else ("mean", "std"):
            del d[k]
        return d

    def encode(self, cells: pd.Series, where: str) -> np.ndarray:
        """The column's feature block ``[rows, width]`` (float64)."""
        if self.kind == "numeric":
            x = _numbers(cells)
            bad = np.flatnonzero(cells.notna().to_numpy() & np.isnan(x))
            if bad.size:
                raise ValueError(
                    f"{where}, row {bad[0] + 1}: column {self.name!r} holds {cells.iloc[bad[0]]!r}, not a "
                    f"number (the training data had numbers there); fix the value or leave it empty"
                )
            fill = float(self.fill) if self.fill is not None else 0.0
            return ((np.where(np.isnan(x), fill, x) - self.mean) / self.std)[:, None]
        seen = set(self.seen)
        slot = {c: i for i, c in enumerate(self.categories) if c in seen}
        out = np.zeros((len(cells), self.width))
        for row, v in enumerate(cells.fillna(self.fill if self.fill is not None else "")):
            if v in slot:
                out[row, slot[v]] = 1.0
        return out


@dataclass
class TablePreprocessing(Preprocessing):
    """A task's CSV rows -> standardised, one-hot encoded feature rows; its class names."""

    kind: ClassVar[str] = "tabular"
    label_column: str
    columns: list[Column]
    classes: list[str]

    @classmethod
    def fit(cls, frame: pd.DataFrame, label_column: str, classes: list[str],
            train: np.ndarray) -> TablePreprocessing:
        """Every column but the label, fitted on the ``train`` rows."""
        cols = [Column.fit(c, frame[c], train) for c in frame.columns if c != label_column]
        return cls(label_column, cols, classes)

    @property
    def features(self) -> int:
        return sum(c.width for c in self.columns)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.features,)

    def transform(self, frame: pd.DataFrame, where: str, task: str = "") -> np.ndarray:
        """The feature rows of ``frame`` (float64); a missing training column is an error."""
        absent = [c.name for c in self.columns if c.name not in frame.columns]
        if absent:
            of = f" of task {task!r}" if task else ""
            raise ValueError(
                f"{where} lacks the training column(s) {', '.join(map(repr, absent))}{of}; add them "
                f"(empty cells count as missing values)"
            )
        blocks = [c.encode(frame[c.name], where) for c in self.columns]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((frame.shape[0], 0))

    def encode(self, source: Any) -> Encoded:
        """A CSV file (or a pandas table) of new rows; its other columns are ignored (a note says
        which; the label column is ignored quietly). Ids are the row numbers, from 1."""
        frame = read_table(source)
        where = str(source) if not isinstance(source, pd.DataFrame) else "the table"
        known = {c.name for c in self.columns} | {self.label_column}
        extra = [c for c in frame.columns if c not in known]
        notes = []
        if extra:
            notes.append(f"ignored the column(s) {', '.join(extra)} of {where}: not used in training")
        x = torch.from_numpy(self.transform(frame, where)).float()
        return Encoded([str(i + 1) for i in range(frame.shape[0])], x, notes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label_column": self.label_column, "classes": list(self.classes),
                "columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TablePreprocessing:
        if data.get("kind") != cls.kind:
            raise ValueError(f"not a {cls.kind} preprocessing (kind {data.get('kind')!r})")
        return cls(data["label_column"], [Column(**c) for c in data["columns"]], list(data["classes"]))


# -- the folder ------------------------------------------------------------------------------------
def task_files(root: Path, label_column: str) -> list[tuple[str, Path, str]]:
    """(task, CSV file, label column) of every task in ``root``: ``tasks.yaml``'s entries in its
    order, then every other ``*.csv`` by name."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"tabular data folder {root} does not exist; --data-dir must be a folder with one CSV file "
            f"per task"
        )
    entries = _tasks_yaml(root / TASKS_FILE)
    out: list[tuple[str, Path, str]] = []
    for name, entry in entries.items():
        path = root / str(entry.get("file", f"{name}.csv"))
        if not path.is_file():
            raise FileNotFoundError(
                f"{root / TASKS_FILE}: task {name!r} names the file {path}, which does not exist"
            )
        out.append((name, path, str(entry.get("label_column", label_column))))
    named = {p.resolve() for _, p, _ in out}
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv" and p.is_file()):
        if path.resolve() not in named and path.stem not in entries:
            out.append((path.stem, path, label_column))
    if not out:
        raise FileNotFoundError(
            f"no CSV files in {root}; put one file per task there (its name is the task name)"
        )
    return out


def _tasks_yaml(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must map each task name to its file and label_column")
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(map(str, entry)) - set(_TASK_KEYS):
            raise ValueError(f"{path}: task {name!r} must be a mapping with {' and/or '.join(_TASK_KEYS)}")
        for k, v in entry.items():
            if not isinstance(v, str):
                raise ValueError(f"{path}: task {name!r}: {k} must be text, got {v!r} (quote it)")
    return {str(k): v for k, v in data.items()}


def load_tabular(data_dir: str | Path, label_column: str = "label",
                 fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                 num_tasks: int | None = None) -> list[TaskData]:
    """The tasks of a folder of CSV files (the first ``num_tasks``; None: all), each split and
    preprocessed as the module docstring says."""
    files = task_files(Path(data_dir), label_column)
    if num_tasks is not None and num_tasks > len(files):
        raise ValueError(f"tasks={num_tasks}, but {data_dir} holds {len(files)} task(s); lower tasks")
    return [load_task(name, path, label, fractions, seed) for name, path, label in files[:num_tasks]]


def load_task(name: str, path: Path, label_column: str, fractions: Sequence[float], seed: int) -> TaskData:
    """One task from its CSV file."""
    frame = read_table(path)
    if label_column not in frame.columns:
        raise ValueError(
            f"{path} has no label column {label_column!r} (its columns: {', '.join(frame.columns)}); "
            f"name it with --set label_column=NAME or in {path.parent / TASKS_FILE}"
        )
    labels = frame[label_column]
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy()) + 1
        raise ValueError(
            f"{path}: {len(rows)} row(s) have no label (first: row {rows[0]}); fill or drop them"
        )
    classes = label_order(list(labels))
    y = np.array(labels.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64))
    check_classes(name, path, classes)
    if frame.shape[1] < 2:
        raise ValueError(f"{path} has no column besides its label {label_column!r}; add the inputs")
    parts = split_rows(name, path, y, fractions, seed)
    prep = TablePreprocessing.fit(frame, label_column, classes, parts[0])
    x = prep.transform(frame, str(path), name)
    return TaskData.from_rows(name, len(classes), torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y),
                              [torch.from_numpy(p) for p in parts], prep)
