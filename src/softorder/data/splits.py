"""The splits of the user's own tasks (``tabular``, ``imagefolder``): stratified per task from the
seed exactly as for UCI (:func:`softorder.data.uci.uci_split`), with errors that say what to add."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from softorder.data.tasks import SPLITS
from softorder.data.uci import uci_split


def check_classes(name: str, where: Path, classes: Sequence[str]) -> None:
    """A classification task needs two classes at least."""
    if len(classes) < 2:
        raise ValueError(
            f"task {name!r} ({where}) has one class ({classes[0]!r}); a task needs at least two classes"
        )


def split_rows(name: str, where: Path, y: np.ndarray, fractions: Sequence[float], seed: int,
               unit: str = "rows") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The task's stratified train / val / test rows (as for UCI); too few ``unit`` (rows,
    images) for a split is an error."""
    parts = uci_split(name, y, seed, fractions)
    if any(len(p) == 0 for p in parts):
        sizes = ", ".join(f"{s} {len(p)}" for s, p in zip(SPLITS, parts))
        raise ValueError(
            f"task {name!r} ({where}) has too few {unit} for its train / validation / test splits "
            f"({len(y)} {unit}: {sizes}); give it more {unit} (each split needs one)"
        )
    return parts
