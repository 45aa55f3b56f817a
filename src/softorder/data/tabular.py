"""Tasks from the user's own CSV files, one file per task (the ``tabular`` benchmark).

A folder holds one CSV file per task, named after it (``heart.csv`` is the task ``heart``), each
with a header row and a label column (``label`` unless told otherwise). An optional
``tasks.yaml`` in the folder names a task's ``file`` and ``label_column`` when they differ; its
tasks come first, in its order, then the other CSV files by name::

    heart:
      file: processed_cleveland.csv
      label_column: num
      columns: {grade: categorical, dose: numeric}

Files are read with pandas, every cell as text (:mod:`softorder.data.tablefile`: the missing-value
markers, numbers with thousands separators, one-line errors for a name given twice or a row of
another length). A column is numeric when every value present in the file is a number (``inf``
counts as missing), else categorical, unless ``tasks.yaml`` declares its type (``columns``); a
column of numbers but for a few cells is read as categorical with a one-line warning that says how
to declare it. :class:`TablePreprocessing` is fitted on the task's TRAINING rows only:

* numeric: a missing value becomes the training median, then ``(x - mean) / std`` with the
  training mean and standard deviation (std 1 for a constant column), as for UCI;
* categorical: a missing value becomes the most frequent training category, then one-hot over the
  categories seen in training; any other category is all zeros. The one-hot layout has a slot for
  every category of the file (a slot no training row has stays zero), so trials with other splits
  build networks of one shape (``compare`` trains them as one vectorised model).

Labels may be text or numbers; labels that are numbers compare as numbers (``1`` and ``1.0`` are one
class); the classes are sorted (by value when all are numbers). A label of numbers with more
distinct values than half its rows looks continuous and is refused. Splits are stratified per task
from the seed exactly as for UCI (:mod:`softorder.data.splits`).
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
import torch
import yaml

from softorder.data.splits import check_classes, split_rows
from softorder.data.tablefile import is_missing, label_classes, numbers_of, odd_cells, read_table, to_numbers
from softorder.data.tasks import Encoded, Preprocessing, TaskData

TASKS_FILE = "tasks.yaml"
_TASK_KEYS = ("file", "label_column", "columns")
KINDS = ("numeric", "categorical")
#: a column of numbers but for at most this fraction of its cells gets a warning
FEW = 0.1
_warned: set[str] = set()


def column_kind(name: str, cells: pd.Series, where: Path, task: str) -> str:
    """A column's type read from its cells: numeric when every present cell is a number. A column
    of numbers but for a few cells (at most :data:`FEW` of them) is categorical, and a one-line
    warning (once per process) names the cells and how to declare the column's type."""
    odd = odd_cells(cells)
    if not odd.any():
        return "numeric"
    present = int(cells.notna().sum())
    if odd.sum() <= FEW * present:
        values = list(dict.fromkeys(cells[odd]))
        shown = ", ".join(map(repr, values[:5])) + (", …" if len(values) > 5 else "")
        levels = cells.dropna().nunique()
        _warn(
            f"column {name!r} of {where} holds numbers but for {int(odd.sum())} cell(s) ({shown}), so it is "
            f"read as categorical ({levels} categories); if it is numeric, declare it in "
            f"{where.parent / TASKS_FILE} ({task}: {{columns: {{{name}: numeric}}}}: those cells then count "
            f"as missing), or declare it categorical to keep this reading"
        )
    return "categorical"


def _warn(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"softorder: warning: {message}", file=sys.stderr)


@dataclass
class Column:
    """One input column: ``numeric`` (imputed with ``fill``, standardised with ``mean``, ``std``)
    or ``categorical`` (``fill`` for a missing cell; one-hot slots ``categories``, of which the
    ``seen`` ones were in training rows and the others stay zero). A column ``declared`` numeric
    in ``tasks.yaml`` reads a cell that is not a number as missing (else it is an error)."""

    name: str
    kind: str
    fill: float | str | None
    mean: float = 0.0
    std: float = 1.0
    categories: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    declared: bool = False

    @property
    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories)

    @classmethod
    def fit(cls, name: str, cells: pd.Series, train: np.ndarray, kind: str, declared: bool = False) -> Column:
        """The column of type ``kind`` (:func:`column_kind`, or ``declared``), its statistics from
        the ``train`` rows; a numeric column's cells that are not finite numbers count as missing."""
        if kind == "numeric":
            x = numbers_of(cells)
            t = x[train][~np.isnan(x[train])]
            median = float(np.median(t)) if t.size else 0.0
            filled = np.where(np.isnan(x[train]), median, x[train])
            std = float(filled.std())
            return cls(name, "numeric", median, float(filled.mean()), std if std > 1e-12 else 1.0,
                       declared=declared)
        counts = cells.iloc[train].dropna().value_counts()
        seen = sorted(map(str, counts.index))
        fill = min(seen, key=lambda c: (-int(counts[c]), c)) if seen else None  # the most frequent
        return cls(name, "categorical", fill, categories=sorted(set(cells.dropna())), seen=seen,
                   declared=declared)

    def to_dict(self) -> dict[str, Any]:
        """The column's entries (a numeric column has no categories, a categorical one no mean)."""
        d = dataclasses.asdict(self)
        for k in ("categories", "seen") if self.kind == "numeric" else ("mean", "std"):
            del d[k]
        if not self.declared:
            del d["declared"]
        return d

    def encode(self, cells: pd.Series, where: str) -> np.ndarray:
        """The column's feature block ``[rows, width]`` (float64)."""
        if self.kind == "numeric":
            x = numbers_of(cells)
            bad = np.flatnonzero(odd_cells(cells))
            if bad.size and not self.declared:
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

    def as_text(self, cells: pd.Series, where: str) -> pd.Series:
        """A caller's cells of this categorical column as the text a file holds: pandas reads the
        grade ``1`` as ``1.0`` when a cell of the column is empty, so a number (or bool) is the
        category of that value (a number matching two categories, such as '1' and '1.0', is an
        error); text stays as it is."""
        by_value: dict[float, list[str]] = {}
        for c, v in zip(self.categories, to_numbers(pd.Series(self.categories, dtype=object))):
            if not np.isnan(v):
                by_value.setdefault(float(v), []).append(c)

        def text(v: Any) -> Any:
            if isinstance(v, str) or is_missing(v):
                return v
            if isinstance(v, bool | np.bool_):
                found = [c for c in self.categories if c.lower() == str(bool(v)).lower()]
            elif isinstance(v, numbers.Real):
                found = by_value.get(float(v), [])
            else:
                return v
            if len(found) > 1:
                raise ValueError(
                    f"{where}'s column {self.name!r} holds the number {v!r}, which is two categories of "
                    f"training ({', '.join(map(repr, found))}); give the column as text, as the file "
                    f"holds it (pandas.read_csv(..., dtype=str))"
                )
            return found[0] if found else v

        return cells.astype(object).map(text)


@dataclass
class TablePreprocessing(Preprocessing):
    """A task's CSV rows -> standardised, one-hot encoded feature rows; its class names."""

    kind: ClassVar[str] = "tabular"
    label_column: str
    columns: list[Column]
    classes: list[str]

    @classmethod
    def fit(cls, frame: pd.DataFrame, label_column: str, classes: list[str], train: np.ndarray,
            kinds: Mapping[str, str], declared: Sequence[str] = ()) -> TablePreprocessing:
        """Every column but the label, of its type in ``kinds`` (the ``declared`` ones from
        ``tasks.yaml``), fitted on the ``train`` rows."""
        cols = [Column.fit(c, frame[c], train, kinds[c], c in declared) for c in frame.columns
                if c != label_column]
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
        which; the label column is ignored quietly). Ids are the row numbers, from 1. A table's
        categorical columns are compared as the file's text (:meth:`Column.as_text`)."""
        where = str(source) if not isinstance(source, pd.DataFrame) else "the table"
        if isinstance(source, pd.DataFrame):
            source = source.copy()
            for c in self.columns:
                if c.kind == "categorical" and c.name in source.columns:
                    source[c.name] = c.as_text(source[c.name], where)
        frame = read_table(source)
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
class TaskFile(NamedTuple):
    """A task of the folder: its name, CSV file, label column and declared column types."""

    name: str
    path: Path
    label_column: str
    columns: dict[str, str]


def task_files(root: Path, label_column: str) -> list[TaskFile]:
    """Every task in ``root``: ``tasks.yaml``'s entries in its order, then every other ``*.csv``
    by name."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"tabular data folder {root} does not exist; --data-dir must be a folder with one CSV file "
            f"per task"
        )
    entries = _tasks_yaml(root / TASKS_FILE)
    out: list[TaskFile] = []
    for name, entry in entries.items():
        path = root / str(entry.get("file", f"{name}.csv"))
        if not path.is_file():
            raise FileNotFoundError(
                f"{root / TASKS_FILE}: task {name!r} names the file {path}, which does not exist"
            )
        columns = {str(c): str(kind) for c, kind in entry.get("columns", {}).items()}
        out.append(TaskFile(name, path, str(entry.get("label_column", label_column)), columns))
    named = {t.path.resolve() for t in out}
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv" and p.is_file()):
        if path.resolve() not in named and path.stem not in entries:
            out.append(TaskFile(path.stem, path, label_column, {}))
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
        raise ValueError(f"{path} must map each task name to its file, label_column and columns")
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(map(str, entry)) - set(_TASK_KEYS):
            keys = f"{', '.join(_TASK_KEYS[:-1])} and/or {_TASK_KEYS[-1]}"
            raise ValueError(f"{path}: task {name!r} must be a mapping with {keys}")
        for k, v in entry.items():
            if k == "columns":
                _check_kinds(path, name, v)
            elif not isinstance(v, str):
                raise ValueError(f"{path}: task {name!r}: {k} must be text, got {v!r} (quote it)")
    return {str(k): v for k, v in data.items()}


def _check_kinds(path: Path, task: str, columns: Any) -> None:
    """``columns`` maps column names to a type of :data:`KINDS`."""
    if not isinstance(columns, dict):
        raise ValueError(
            f"{path}: task {task!r}: columns must map each column name to numeric or categorical, "
            f"got {columns!r}"
        )
    for column, kind in columns.items():
        if kind not in KINDS:
            raise ValueError(
                f"{path}: task {task!r}: columns: {column} must be numeric or categorical, got {kind!r}"
            )


def load_tabular(data_dir: str | Path, label_column: str = "label",
                 fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0,
                 num_tasks: int | None = None) -> list[TaskData]:
    """The tasks of a folder of CSV files (the first ``num_tasks``; None: all), each split and
    preprocessed as the module docstring says."""
    files = task_files(Path(data_dir), label_column)
    if num_tasks is not None and num_tasks > len(files):
        raise ValueError(f"tasks={num_tasks}, but {data_dir} holds {len(files)} task(s); lower tasks")
    return [load_task(name, path, label, fractions, seed, columns) for name, path, label, columns
            in files[:num_tasks]]


def load_task(name: str, path: Path, label_column: str, fractions: Sequence[float], seed: int,
              columns: Mapping[str, str] | None = None) -> TaskData:
    """One task from its CSV file; ``columns`` declares column types (the others are read from
    their cells, :func:`column_kind`)."""
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
    classes, y = label_classes(labels)
    if np.isfinite(to_numbers(labels)).all() and len(classes) > max(10, len(labels) // 2):
        raise ValueError(
            f"task {name!r} ({path}): its label column {label_column!r} has {len(classes)} distinct values "
            f"in {len(labels)} rows and looks continuous (softorder learns classes, and most of these would "
            f"have one row); give a label column of classes, e.g. the values cut into ranges"
        )
    check_classes(name, path, classes)
    if frame.shape[1] < 2:
        raise ValueError(f"{path} has no column besides its label {label_column!r}; add the inputs")
    kinds = _kinds(frame, label_column, dict(columns or {}), path, name)
    parts = split_rows(name, path, y, fractions, seed)
    prep = TablePreprocessing.fit(frame, label_column, classes, parts[0], kinds, list(columns or {}))
    x = prep.transform(frame, str(path), name)
    return TaskData.from_rows(name, len(classes), torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y),
                              [torch.from_numpy(p) for p in parts], prep)


def _kinds(frame: pd.DataFrame, label_column: str, declared: dict[str, str], path: Path,
           task: str) -> dict[str, str]:
    """Every input column's type: declared in ``tasks.yaml`` or read from its cells."""
    where = f"{path.parent / TASKS_FILE}: task {task!r}"
    if label_column in declared:
        raise ValueError(
            f"{where}: columns declares {label_column!r}, which is the label column (its values are "
            f"classes); remove it from columns"
        )
    absent = [c for c in declared if c not in frame.columns]
    if absent:
        raise ValueError(
            f"{where} declares the column(s) {', '.join(map(repr, absent))}, which {path.name} does not "
            f"have (its columns: {', '.join(frame.columns)})"
        )
    return {c: declared.get(c) or column_kind(c, frame[c], path, task) for c in frame.columns
            if c != label_column}
