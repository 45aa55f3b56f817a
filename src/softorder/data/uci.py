"""The ten UCI classification tasks of the soft-ordering paper (Sec. 4.2).

Each data set is read from the ORIGINAL file UCI distributed (see
``softorder.data.download.DATASETS["uci"]``), laid out as ``<data_dir>/uci/<name>/<file>``.
:func:`load_uci` turns each into one multiclass :class:`TaskData` with a stratified
train / validation / test split drawn from a seed. Missing values are imputed with the train
median and features standardised with train statistics only, so nothing leaks from the
validation or test rows.

Every read is verified (:func:`read_uci`): the file's SHA-256 against the download registry
and the expected row and class counts of the spec, both skipped with ``verify=False`` or
``SOFTORDER_NO_VERIFY=1`` (for your own copy); a line with the wrong number of columns, a
non-numeric value or an unknown class is always an error naming the file and line.

(Over 300 lines: ten small parsers, one per original file format, are easier to check side by side
than spread over ten modules.)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from softorder.data.download import fix_hint, resolve_data_dir, verification_enabled, verify_local
from softorder.data.tasks import TaskData

UCI_DATASETS: tuple[str, ...] = (
    "australian",
    "wdbc",
    "ecoli",
    "german",
    "heart_cleveland",
    "hepatitis",
    "iris",
    "pima",
    "wine",
    "yeast",
)
MISSING = "?"


@dataclass(frozen=True)
class _Spec:
    """How to parse one UCI file (0-based column indices into the raw line) and what it holds:
    ``rows`` data rows whose label column takes the raw values ``classes`` (all of them)."""

    file: str
    sep: str | None  # None: split on runs of whitespace
    columns: int
    label: int
    rows: int
    classes: tuple[str, ...]
    drop: tuple[int, ...] = ()
    label_names: dict[str, str] = field(default_factory=dict)
    zero_missing: tuple[int, ...] = ()  # feature indices where 0 means "not measured"


_BINARY = ("0", "1")
# Rows and classes as measured from the original files (see ../shared/data/uci/README.md).
_SPECS: dict[str, _Spec] = {
    "australian": _Spec("australian.dat", None, 15, 14, 690, _BINARY),
    "wdbc": _Spec("wdbc.data", ",", 32, 1, 569, ("B", "M"), drop=(0,)),
    "ecoli": _Spec("ecoli.data", None, 9, 8, 336, ("cp", "im", "imL", "imS", "imU", "om", "omL", "pp"),
                   drop=(0,)),
    "german": _Spec("german.data-numeric", None, 25, 24, 1000, ("1", "2"),
                    label_names={"1": "good", "2": "bad"}),
    "heart_cleveland": _Spec("processed.cleveland.data", ",", 14, 13, 303, ("0", "1", "2", "3", "4")),
    "hepatitis": _Spec("hepatitis.data", ",", 20, 0, 155, ("1", "2"),
                       label_names={"1": "DIE", "2": "LIVE"}),
    "iris": _Spec("iris.data", ",", 5, 4, 150, ("Iris-setosa", "Iris-versicolor", "Iris-virginica")),
    # plas, pres, skin, insu, mass cannot be 0 in a living patient: 0 marks a missing value.
    "pima": _Spec("pima-indians-diabetes.data", ",", 9, 8, 768, _BINARY, zero_missing=(1, 2, 3, 4, 5)),
    "wine": _Spec("wine.data", ",", 14, 0, 178, ("1", "2", "3")),
    "yeast": _Spec("yeast.data", None, 10, 9, 1484,
                   ("CYT", "ERL", "EXC", "ME1", "ME2", "ME3", "MIT", "NUC", "POX", "VAC"), drop=(0,)),
}


def uci_path(name: str, data_dir: str | Path | None = None) -> Path:
    """Where the original file of UCI data set ``name`` is expected: ``<data_dir>/uci/<name>/``."""
    spec = _spec(name)
    return resolve_data_dir(data_dir) / "uci" / name / spec.file


def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise ValueError(f"unknown UCI data set {name!r}; valid names: {', '.join(UCI_DATASETS)}")
    return _SPECS[name]


def _sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _corrupt(where: str, problem: str, root: Path) -> ValueError:
    return ValueError(
        f"{where}: {problem}; the file is corrupt or truncated, download it again with "
        f"`softorder data download uci --root {root}`"
    )


def _parse_line(
    line: str, spec: _Spec, keep: list[int], where: str, root: Path
) -> tuple[list[float], str]:
    """One data line -> (features with NaN for ``?``, raw label); a damaged line raises."""
    cells = [c.strip() for c in line.split(spec.sep)] if spec.sep else line.split()
    if len(cells) != spec.columns:
        raise _corrupt(where, f"expected {spec.columns} columns, found {len(cells)}", root)
    label = cells[spec.label]
    if label not in spec.classes:
        raise _corrupt(where, f"class {label!r} is not one of {', '.join(spec.classes)}", root)
    row = []
    for c in keep:
        cell = cells[c]
        if cell == MISSING:
            row.append(math.nan)
            continue
        try:
            row.append(float(cell))
        except ValueError:
            raise _corrupt(f"{where}, column {c + 1}", f"{cell!r} is not a number", root) from None
    return row, label


def _check_counts(name: str, path: Path, labels: list[str], root: Path) -> None:
    """The official file's row count and every one of its classes (verification only)."""
    spec = _SPECS[name]
    if len(labels) != spec.rows:
        raise ValueError(
            f"{path} has {len(labels)} data rows, but UCI's {name} has {spec.rows}; "
            f"{fix_hint('uci', root)}"
        )
    present = set(labels)
    absent = [c for c in spec.classes if c not in present]
    if absent:
        raise ValueError(
            f"{path} has no row of the class(es) {', '.join(absent)} of UCI's {name}; "
            f"{fix_hint('uci', root)}"
        )


def read_uci(
    name: str, data_dir: str | Path | None = None, verify: bool | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parse and verify the original UCI file of ``name`` (paper Sec. 4.2).

    Returns ``(x, y, class_names)``: float64 features ``[n, d]`` with NaN for missing values
    (``?`` cells, and pima's impossible zeros in plas, pres, skin, insu, mass), int64 labels in
    ``0..C-1`` and the ``C`` class names (numeric labels in numeric order, text labels sorted).
    ID / name columns (wdbc, ecoli, yeast) are dropped. Every line must parse; then, unless
    verification is off (``verify=False`` or ``SOFTORDER_NO_VERIFY=1``), the file must match
    its registered SHA-256 and the spec's row and class counts.

    Raises:
        FileNotFoundError: the file is absent (the message says how to download it).
        ValueError: a line has the wrong number of columns, a non-numeric feature or an
            unknown class; or verification fails (the message says how to fix or opt out).
    """
    spec = _spec(name)
    root = resolve_data_dir(data_dir)
    path = uci_path(name, root)
    if not path.is_file():
        raise FileNotFoundError(
            f"UCI data set {name!r} not found: expected the file {path}. Download it with "
            f"`softorder data download uci --root DIR` and pass --data-dir DIR (or set "
            f"SOFTORDER_DATA_DIR=DIR)."
        )
    keep = [c for c in range(spec.columns) if c != spec.label and c not in spec.drop]
    rows: list[list[float]] = []
    labels: list[str] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                row, label = _parse_line(line, spec, keep, f"{path}, line {lineno}", root)
                rows.append(row)
                labels.append(label)
    if not rows:
        raise _corrupt(str(path), "no data rows", root)
    if verification_enabled(verify):
        _check_counts(name, path, labels, root)
        verify_local(path, root, verify)
    x = np.asarray(rows, dtype=np.float64)
    for j in spec.zero_missing:
        x[x[:, j] == 0, j] = math.nan
    raw = sorted(spec.classes, key=_sort_key)
    index = {lab: i for i, lab in enumerate(raw)}
    y = np.asarray([index[lab] for lab in labels], dtype=np.int64)
    return x, y, [spec.label_names.get(lab, lab) for lab in raw]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not math.isfinite(f) or f < 0 for f in fractions):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test), got {fractions!r}"
        )
    if abs(sum(fractions) - 1.0) > 1e-6 or fractions[0] <= 0:
        raise ValueError(
            f"fractions (train, val, test) must sum to 1 with train > 0, got {tuple(fractions)}"
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def _allocate(n: int, fractions: tuple[float, ...], rng: np.random.Generator) -> list[int]:
    """Split ``n`` members of one class into counts per split (largest remainder).

    Every split with a positive fraction gets at least one member when ``n`` allows; with too
    few members they go round-robin to train, val, test (in that order).
    """
    active = [i for i, f in enumerate(fractions) if f > 0]
    counts = [0] * len(fractions)
    if n <= len(active):
        for i in active[:n]:
            counts[i] = 1
        return counts
    exact = [n * f for f in fractions]
    counts = [math.floor(e) for e in exact]
    rest = n - sum(counts)
    tiebreak = rng.random(len(fractions))
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), tiebreak[i]))
    for i in order[:rest]:
        counts[i] += 1
    for i in active:  # no empty split: borrow from the largest
        if counts[i] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[i] = 1
    return counts


def stratified_split(
    y: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint sorted (train, val, test) row indices covering all rows, stratified by ``y``."""
    fr = _check_fractions(fractions)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        start = 0
        for i, count in enumerate(_allocate(len(members), fr, rng)):
            parts[i].append(members[start : start + count])
            start += count
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def _standardise(
    x_train: np.ndarray, others: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Impute NaN with the train median, then standardise with train mean / std (0 -> 1)."""
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(np.isnan(x_train).all(0), 0.0, x_train), axis=0)
    median = np.nan_to_num(median, nan=0.0)

    def fill(a: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(a), median, a)

    train = fill(x_train)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return (train - mean) / std, [(fill(a) - mean) / std for a in others]


def uci_split(
    name: str, y: np.ndarray, seed: int = 0, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (train, val, test) row indices :func:`load_uci` uses for data set ``name``.

    The generator is seeded from ``seed`` and the name, so the split of one data set does not
    depend on which other data sets are loaded.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return stratified_split(y, fractions, rng)


def load_uci(
    data_dir: str | Path | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    datasets: Sequence[str] = UCI_DATASETS,
    verify: bool | None = None,
) -> list[TaskData]:
    """The UCI multitask benchmark (paper Sec. 4.2): one softmax task per data set.

    Each data set gets a stratified train / val / test split from ``seed`` (``fractions``),
    missing values imputed with the train median, and features standardised with the train
    mean and standard deviation. Tasks come back in the order of ``datasets``. Files are
    verified as in :func:`read_uci` (``verify=False`` opts out).
    """
    if isinstance(datasets, str):
        datasets = (datasets,)
    for name in datasets:
        _spec(name)
    _check_fractions(fractions)
    root = resolve_data_dir(data_dir)
    tasks = []
    for name in datasets:
        x, y, classes = read_uci(name, root, verify)
        train, val, test = uci_split(name, y, seed, fractions)
        x_train, (x_val, x_test) = _standardise(x[train], [x[val], x[test]])

        def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a)).to(dtype)

        tasks.append(
            TaskData(
                name=name,
                num_classes=len(classes),
                x_train=t(x_train, torch.float32),
                y_train=t(y[train], torch.int64),
                x_val=t(x_val, torch.float32),
                y_val=t(y[val], torch.int64),
                x_test=t(x_test, torch.float32),
                y_test=t(y[test], torch.int64),
                binary=False,
            )
        )
    return tasks
