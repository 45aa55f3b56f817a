"""The user's CSV files (and pandas tables) read as text, as they mean them (``tabular``).

* Every cell is stripped text; a cell that is one of the :data:`MISSING` markers is missing (NaN):
  pandas' own list (``read_csv``'s default ``na_values``: ``NA``, ``N/A``, ``n/a``, ``NaN``,
  ``nan``, ``NULL``, ``null``, ``None``, ``#N/A``, …), the empty cell, ``?`` and ``-``.
* A file whose header names a column twice, or with a row whose number of fields differs from
  the header's (a trailing comma on every row, a row cut short), is an error naming it: pandas would
  rename the second column ``a.1``, take the first column as the row index, or fill the row with
  missing values, each a quietly different table.
* :func:`to_numbers` reads cells as numbers: whatever ``pandas.to_numeric`` reads, and numbers with
  thousands separators (``1,234``).
* Labels that are numbers compare as numbers (:func:`label_classes`).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The cells that are missing values, in every column (docs/your-data.md lists them).
MISSING = ("", "?", "-", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>",
           "#N/A", "#N/A N/A", "#NA", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN")
_GROUPED = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"  # 1,234 and 12,345,678.5: thousands separators


def read_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A CSV file (or a table given in Python) with every cell as stripped text and every missing
    cell (:data:`MISSING`) as NaN; an empty file, one without data rows, a column name given twice
    or a row of another length than the header is an error."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        where = "the table"
    else:
        where = str(source)
        if not Path(source).is_file():
            what = "is a folder" if Path(source).is_dir() else "does not exist"
            raise FileNotFoundError(f"{where} {what}; give a CSV file with a header row")
        try:
            _distinct(_check_rows(Path(source)), where)
            frame = pd.read_csv(source, dtype=str, na_values=list(MISSING), keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{where} is empty; a task file needs a header row and one row per example"
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{where} is not a readable CSV file ({first}); fix or re-export it") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _distinct(list(frame.columns), where)
    if frame.shape[0] == 0:
        raise ValueError(f"{where} has a header but no data rows; add one row per example")
    for c in frame.columns:
        s = frame[c].map(lambda v: np.nan if is_missing(v) else str(v).strip()).astype(object)
        frame[c] = s.where(~s.isin(MISSING), np.nan)
    return frame


def _distinct(names: list[str], where: str) -> None:
    """Every column has its own name (stripped); pandas would rename a second ``a`` to ``a.1``."""
    twice = [c for c, n in Counter(name.strip() for name in names).items() if n > 1]
    if twice:
        raise ValueError(
            f"{where} has the column name(s) {', '.join(map(repr, twice))} more than once; rename them so "
            f"that every column has its own name"
        )


def _check_rows(path: Path) -> list[str]:
    """The header's names, once every row of the file is checked to have as many fields as the
    header (blank lines skipped, as pandas does)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f)
        header: list[str] | None = None
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if header is None:
                header = row
            elif len(row) != len(header):
                trailing = len(row) == len(header) + 1 and not row[-1].strip()
                hint = " (a trailing comma?)" if trailing else ""
                raise ValueError(
                    f"{path}, line {rows.line_num}: {len(row)} fields, but the header has {len(header)}"
                    f"{hint}; give every row one field per column"
                )
    return header or []


def is_missing(v: Any) -> bool:
    """A cell that a table given in Python leaves empty: None, NaN or pandas' NA."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def to_numbers(cells: pd.Series) -> np.ndarray:
    """The cells as float64: NaN where a cell is missing or not a number; ``inf`` stays infinite;
    thousands separators are read (``1,234`` is 1234)."""
    text = cells.astype(object)
    x = np.array(pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    grouped = text.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool) & np.isnan(x)
    if grouped.any():
        hits = text[grouped].str.fullmatch(_GROUPED).to_numpy(dtype=bool)
        rows = np.flatnonzero(grouped)[hits]
        x[rows] = pd.to_numeric(text.iloc[rows].str.replace(",", "", regex=False)).to_numpy(dtype=np.float64)
    return x


def numbers_of(s: pd.Series) -> np.ndarray:
    """The column as float64, NaN where a cell is missing or not a finite number."""
    x = to_numbers(s)
    x[~np.isfinite(x)] = np.nan
    return x


def odd_cells(s: pd.Series) -> np.ndarray:
    """Which cells are present but not numbers (``inf`` is a number)."""
    return np.asarray(s.notna().to_numpy() & np.isnan(to_numbers(s)), dtype=bool)


def label_order(labels: Sequence[str]) -> list[str]:
    """The distinct labels sorted: by value when every one is a number, else as text."""
    distinct = sorted(set(labels))
    values = to_numbers(pd.Series(distinct, dtype=object))
    if np.isnan(values).any():
        return distinct
    return [distinct[i] for i in np.argsort(values, kind="stable")]


def label_classes(labels: pd.Series) -> tuple[list[str], np.ndarray]:
    """The classes of a label column and every row's class id. Labels that are numbers compare as
    numbers (``1``, ``1.0`` and ``1e0`` are one class, named as its first row spells it), others as
    text; the classes in :func:`label_order`."""
    text = [str(v) for v in labels]
    values = to_numbers(labels)
    keys: list[Any] = [t if np.isnan(v) else float(v) for t, v in zip(text, values)]
    name: dict[Any, str] = {}
    for k, t in zip(keys, text):
        name.setdefault(k, t)
    classes = label_order(list(name.values()))
    index = {c: i for i, c in enumerate(classes)}
    return classes, np.array([index[name[k]] for k in keys], dtype=np.int64)
