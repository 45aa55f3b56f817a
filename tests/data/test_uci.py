"""UCI benchmark loading (paper Sec. 4.2) from the original files in ../shared/data/uci."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from softorder.data.download import DATASETS, NO_VERIFY_ENV
from softorder.data.tasks import TaskData
from softorder.data.uci import (
    _SPECS,
    UCI_DATASETS,
    load_uci,
    read_uci,
    stratified_split,
    uci_path,
    uci_split,
)

EXPECTED = {  # rows, features, classes
    "australian": (690, 14, 2),
    "wdbc": (569, 30, 2),
    "ecoli": (336, 7, 8),
    "german": (1000, 24, 2),
    "heart_cleveland": (303, 13, 5),
    "hepatitis": (155, 19, 2),
    "iris": (150, 4, 3),
    "pima": (768, 8, 2),
    "wine": (178, 13, 3),
    "yeast": (1484, 8, 10),
}


def _shared_data() -> Path | None:
    """The read-only benchmark data next to the repo (``<repo>/../shared/data``), if present."""
    here = Path(__file__).resolve()
    for root in (here.parents[3] / "shared" / "data", here.parents[2] / "shared" / "data"):
        if (root / "uci").is_dir():
            return root
    return None


@pytest.fixture(scope="module")
def data_dir() -> Path:
    root = _shared_data()
    if root is None or not all(uci_path(n, root).is_file() for n in UCI_DATASETS):
        pytest.skip("shared UCI data (../shared/data/uci) not available")
    return root


@pytest.fixture(scope="module")
def tasks(data_dir: Path) -> list[TaskData]:
    return load_uci(data_dir, seed=0)


@pytest.mark.parametrize("name", UCI_DATASETS)
def test_read_shapes(data_dir: Path, name: str) -> None:
    x, y, classes = read_uci(name, data_dir)
    rows, features, num_classes = EXPECTED[name]
    assert x.shape == (rows, features) and x.dtype == np.float64
    assert y.shape == (rows,) and y.dtype == np.int64
    assert len(classes) == num_classes == len(np.unique(y)) and y.min() == 0


def test_missing_values(data_dir: Path) -> None:
    assert np.isnan(read_uci("heart_cleveland", data_dir)[0]).sum() == 6
    assert np.isnan(read_uci("hepatitis", data_dir)[0]).sum() == 167
    pima = read_uci("pima", data_dir)[0]
    assert np.isnan(pima).sum(axis=0).tolist() == [0, 5, 35, 227, 374, 11, 0, 0]
    for name in ("australian", "wdbc", "ecoli", "german", "iris", "wine", "yeast"):
        assert not np.isnan(read_uci(name, data_dir)[0]).any(), name


def test_class_names(data_dir: Path) -> None:
    assert read_uci("iris", data_dir)[2] == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    _, y, classes = read_uci("ecoli", data_dir)
    counts = dict(zip(classes, np.bincount(y).tolist(), strict=True))
    assert counts == {"cp": 143, "im": 77, "pp": 52, "imU": 35, "om": 20, "omL": 5,
                      "imL": 2, "imS": 2}
    _, y, classes = read_uci("hepatitis", data_dir)
    assert classes == ["DIE", "LIVE"] and np.bincount(y).tolist() == [32, 123]


def test_load_tasks(tasks: list[TaskData]) -> None:
    assert [t.name for t in tasks] == list(UCI_DATASETS)
    for t in tasks:
        rows, features, num_classes = EXPECTED[t.name]
        assert t.num_classes == num_classes and not t.binary
        assert t.in_features == features
        sizes = [t.split(s)[0].shape[0] for s in ("train", "val", "test")]
        assert sum(sizes) == rows and all(n > 0 for n in sizes)
        assert abs(sizes[0] - 0.6 * rows) <= num_classes
        for s in ("train", "val", "test"):
            x, y = t.split(s)
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert torch.isfinite(x).all(), (t.name, s)  # missing values imputed
        # standardised with train statistics: train mean 0, std 1 (or constant 0)
        assert t.x_train.double().mean(0).abs().max() < 1e-5
        std = t.x_train.double().std(0, unbiased=False)
        assert (((std - 1).abs() < 1e-4) | (std < 1e-6)).all(), t.name


@pytest.mark.parametrize("name", UCI_DATASETS)
def test_split_stratified_disjoint_covering(data_dir: Path, name: str) -> None:
    _, y, _ = read_uci(name, data_dir)
    train, val, test = uci_split(name, y, seed=3)
    both = np.concatenate([train, val, test])
    assert np.array_equal(np.sort(both), np.arange(len(y)))  # disjoint and covering
    for cls in np.unique(y):
        n = int((y == cls).sum())
        counts = [int((y[idx] == cls).sum()) for idx in (train, val, test)]
        assert counts[0] >= 1
        if n >= 3:
            assert min(counts) >= 1, (name, cls, counts)
            assert abs(counts[0] - 0.6 * n) <= 1 and abs(counts[1] - 0.2 * n) <= 1


def test_standardise_uses_train_statistics_only(data_dir: Path) -> None:
    x, y, _ = read_uci("hepatitis", data_dir)
    train, val, test = uci_split("hepatitis", y, seed=0)
    task = load_uci(data_dir, seed=0, datasets=("hepatitis",))[0]
    xt = x[train]
    median = np.nanmedian(xt, axis=0)
    filled = np.where(np.isnan(xt), median, xt)
    mean, std = filled.mean(0), filled.std(0)
    std[std == 0] = 1
    expect_test = (np.where(np.isnan(x[test]), median, x[test]) - mean) / std
    np.testing.assert_allclose(task.x_test.numpy(), expect_test, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(task.y_val.numpy(), y[val])


def test_seeds(data_dir: Path, tasks: list[TaskData]) -> None:
    again = load_uci(data_dir, seed=0, datasets=("iris", "ecoli"))
    other = load_uci(data_dir, seed=1, datasets=("iris", "ecoli"))
    by_name = {t.name: t for t in tasks}
    for a, b in zip(again, other, strict=True):
        ref = by_name[a.name]
        assert torch.equal(a.x_train, ref.x_train) and torch.equal(a.y_test, ref.y_test)
        assert not torch.equal(a.x_train, b.x_train)


def test_tiny_classes_never_crash() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 50 + [1, 2, 2, 3, 3, 3])
    train, val, test = stratified_split(y, (0.6, 0.2, 0.2), rng)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(y)))
    assert 50 in train and {51, 52} <= set(train) | set(val)
    assert all(set(np.flatnonzero(y == 3)) & set(idx) for idx in (train, val, test))
    train, val, test = stratified_split(y, (0.8, 0.0, 0.2), rng)
    assert len(val) == 0 and len(train) + len(test) == len(y)
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(y, (0.5, 0.2, 0.2), rng)


def test_missing_file_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_uci(tmp_path, datasets=("wine",))
    msg = str(info.value)
    assert str(tmp_path / "uci" / "wine" / "wine.data") in msg
    assert "softorder data download uci --root" in msg and "--data-dir" in msg
    with pytest.raises(ValueError, match="valid names"):
        load_uci(tmp_path, datasets=("mushroom",))


def test_corrupt_line(data_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "uci" / "iris"
    dest.mkdir(parents=True)
    lines = (data_dir / "uci" / "iris" / "iris.data").read_text().splitlines(keepends=True)
    lines[9] = "4.9,3.1,1.5,Iris-setosa\n"  # one column short on line 10
    (dest / "iris.data").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"iris\.data, line 10: expected 5 columns"):
        read_uci("iris", tmp_path)
    lines[9] = "4.9,3.1,abc,0.1,Iris-setosa\n"
    (dest / "iris.data").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"iris\.data, line 10, column 3"):
        read_uci("iris", tmp_path)


def test_whitespace_file_copy_parses(data_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "uci" / "yeast"
    dest.mkdir(parents=True)
    shutil.copy(data_dir / "uci" / "yeast" / "yeast.data", dest / "yeast.data")
    x, y, _ = read_uci("yeast", tmp_path)
    x0, y0, _ = read_uci("yeast", data_dir)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)


# ------------------------------------------------------------------------------ verification
def _copy(data_dir: Path, tmp_path: Path, name: str) -> Path:
    """A writable copy of one original UCI file under ``tmp_path`` (the data dir layout)."""
    src = uci_path(name, data_dir)
    dest = uci_path(name, tmp_path)
    dest.parent.mkdir(parents=True)
    shutil.copy(src, dest)
    return dest


def test_spec_counts_match_the_real_files(data_dir: Path) -> None:
    """The expected rows and classes in the specs are measured from the original files."""
    for name in UCI_DATASETS:
        _, y, classes = read_uci(name, data_dir, verify=True)
        assert len(y) == _SPECS[name].rows == EXPECTED[name][0], name
        assert len(classes) == len(_SPECS[name].classes) == EXPECTED[name][2], name
        assert uci_path(name, data_dir).relative_to(data_dir).as_posix() in {
            f.path for f in DATASETS["uci"]}, name  # every file has a registered checksum


def test_iris_cut_inside_last_field_is_an_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file cut inside line 100's label gives class 'Iris-vers' and loses virginica."""
    dest = _copy(data_dir, tmp_path, "iris")
    lines = dest.read_text().splitlines(keepends=True)
    assert lines[99] == "5.7,2.8,4.1,1.3,Iris-versicolor\n"  # the last versicolor row
    dest.write_text("".join(lines[:99]) + lines[99][: -len("icolor\n")])
    monkeypatch.setenv(NO_VERIFY_ENV, "1")  # a format error: the opt-out does not hide it
    for verify in (True, False, None):
        with pytest.raises(ValueError, match=r"iris\.data, line 100: class 'Iris-vers' is not one of "
                                             r"Iris-setosa, Iris-versicolor, Iris-virginica") as info:
            read_uci("iris", tmp_path, verify=verify)
        assert "softorder data download uci" in str(info.value)


def test_wine_cut_inside_last_number_fails_the_checksum(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = _copy(data_dir, tmp_path, "wine")
    good = read_uci("wine", data_dir)[0]
    dest.write_bytes(dest.read_bytes()[:-2])  # "...,560\n" -> "...,56"
    monkeypatch.delenv(NO_VERIFY_ENV, raising=False)
    with pytest.raises(ValueError, match=r"checksum mismatch for .*wine\.data") as info:
        load_uci(tmp_path, datasets=("wine",))
    msg = str(info.value)
    assert f"softorder data download uci --root {tmp_path}" in msg and "SOFTORDER_NO_VERIFY=1" in msg
    x, _, _ = read_uci("wine", tmp_path, verify=False)  # the explicit opt-out: your own copy
    assert x[-1, -1] == 56 and good[-1, -1] == 560
    monkeypatch.setenv(NO_VERIFY_ENV, "1")
    assert load_uci(tmp_path, datasets=("wine",))[0].num_classes == 3
    monkeypatch.setenv(NO_VERIFY_ENV, "0")  # "0" means verify
    with pytest.raises(ValueError, match="checksum mismatch"):
        read_uci("wine", tmp_path)


def test_missing_rows_and_classes_fail_verification(data_dir: Path, tmp_path: Path) -> None:
    dest = _copy(data_dir, tmp_path, "wine")
    lines = dest.read_text().splitlines(keepends=True)
    dest.write_text("".join(lines[:-10]))  # cut at a line end: every line still parses
    with pytest.raises(ValueError, match=r"wine\.data has 168 data rows, but UCI's wine has 178"):
        read_uci("wine", tmp_path)
    dest.write_text("".join(line for line in lines if not line.startswith("3,")))
    with pytest.raises(ValueError, match=r"wine\.data has 130 data rows"):
        read_uci("wine", tmp_path)
    x, y, classes = read_uci("wine", tmp_path, verify=False)  # own copy: the labels stay put
    assert classes == ["1", "2", "3"] and sorted(set(y.tolist())) == [0, 1] and len(x) == 130


def test_damaged_lines_are_always_errors(data_dir: Path, tmp_path: Path) -> None:
    dest = _copy(data_dir, tmp_path, "heart_cleveland")
    lines = dest.read_text().splitlines(keepends=True)
    for bad, match in [
        (lines[4].rstrip("\n") + ",1\n", r"line 5: expected 14 columns, found 15"),
        (lines[4].replace(",", ",x", 1), r"line 5, column 2: 'x.*' is not a number"),
        (lines[4].rstrip("\n")[:-1] + "7\n", r"line 5: class '7' is not one of 0, 1, 2, 3, 4"),
    ]:
        dest.write_text("".join([*lines[:4], bad, *lines[5:]]))
        for verify in (True, False):
            with pytest.raises(ValueError, match=rf"processed\.cleveland\.data, {match}"):
                read_uci("heart_cleveland", tmp_path, verify=verify)
