"""The ten UCI data sets as a ``tabular`` folder: one CSV file per data set (the cross-check of
``compare tabular`` against ``compare uci``, docs/your-data.md; ``scripts/export_uci.py``).

Each file holds the columns :func:`~softorder.data.uci.read_uci` keeps (``a1``, ``a2``, … in the
original order; missing values empty) and the label. The labels are UCI's class names, prefixed
with their index where the names alone would sort in another order (german: ``0-good``,
``1-bad``), so the ``tabular`` class ids, and with them the stratified splits, are UCI's; a
``tasks.yaml`` keeps UCI's task order. With ``categorical_levels=0`` the ``tabular`` tasks are
then the ``uci`` tasks (tested). With ``categorical_levels=K`` a column whose values are all
integers, at most K distinct, is written as text (``c1``, ``c2``, …), so ``tabular`` one-hot
encodes what ``uci`` standardises as a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from softorder.data.tablefile import label_order
from softorder.data.tabular import TASKS_FILE
from softorder.data.uci import UCI_DATASETS, read_uci


def export_labels(classes: Sequence[str]) -> list[str]:
    """UCI's class names as labels that ``tabular`` sorts in UCI's class order."""
    names = list(classes)
    return names if label_order(names) == names else [f"{i}-{c}" for i, c in enumerate(names)]


def _as_category(column: np.ndarray, levels: int) -> bool:
    present = column[~np.isnan(column)]
    return levels > 0 and present.size > 0 and bool(np.all(present == np.round(present))) \
        and len(np.unique(present)) <= levels


def uci_frame(name: str, data_dir: str | Path | None = None, categorical_levels: int = 0) -> pd.DataFrame:
    """One UCI data set as the table its CSV file holds."""
    x, y, classes = read_uci(name, data_dir)
    frame = pd.DataFrame(index=range(x.shape[0]))
    for j in range(x.shape[1]):
        col = x[:, j]
        if _as_category(col, categorical_levels):
            frame[f"a{j + 1}"] = [f"c{int(v)}" if not np.isnan(v) else "" for v in col]
        else:
            frame[f"a{j + 1}"] = col
    labels = export_labels(classes)
    frame["label"] = [labels[i] for i in y]
    return frame


def export_uci(out: str | Path, data_dir: str | Path | None = None, datasets: Sequence[str] = UCI_DATASETS,
               categorical_levels: int = 0) -> list[Path]:
    """Write ``out/<name>.csv`` for every data set and ``out/tasks.yaml`` (UCI's order)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in datasets:
        path = out / f"{name}.csv"
        uci_frame(name, data_dir, categorical_levels).to_csv(path, index=False, na_rep="")
        paths.append(path)
    (out / TASKS_FILE).write_text("# UCI's task order (softorder.data.uci_export)\n"
                                  + "".join(f"{n}: {{file: {n}.csv}}\n" for n in datasets))
    return paths
