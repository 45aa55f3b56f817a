"""The tabular loader: one CSV file per task, its columns preprocessed with training statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from own_data import write_tabular
from softorder.data.tablefile import label_order
from softorder.data.tabular import TablePreprocessing, load_tabular, read_table, task_files
from softorder.data.uci import UCI_DATASETS, load_uci, uci_split
from softorder.data.uci_export import export_labels, export_uci


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_columns_are_standardised_and_one_hot_with_training_statistics(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d")
    alpha, beta = load_tabular(root, seed=3)
    assert (alpha.name, beta.name) == ("alpha", "beta")
    prep = alpha.preprocessing
    assert isinstance(prep, TablePreprocessing) and prep.classes == ["no", "yes"]
    assert [c.kind for c in prep.columns] == ["numeric", "numeric", "categorical"]
    assert alpha.in_features == 2 + 3  # x1, x2 and one slot per colour
    frame = read_table(root / "alpha.csv")
    y = np.asarray([prep.classes.index(v) for v in frame["label"]])
    train = uci_split("alpha", y, 3, (0.6, 0.2, 0.2))[0]
    x1 = pd.to_numeric(frame["x1"]).to_numpy()[train]
    median = np.nanmedian(x1)
    filled = np.where(np.isnan(x1), median, x1)  # row 3's x1 is empty
    expect = (filled - filled.mean()) / filled.std()
    assert torch.allclose(alpha.x_train[:, 0].double(), torch.from_numpy(expect), atol=1e-6)
    assert torch.allclose(alpha.x_train[:, :2].mean(0), torch.zeros(2), atol=1e-5)  # training statistics
    onehot = alpha.x_train[:, 2:]
    assert bool(((onehot == 0) | (onehot == 1)).all()) and bool((onehot.sum(1) == 1).all())
    assert beta.preprocessing is not None and beta.preprocessing.classes == ["1", "2", "10"]  # by value


def test_missing_values_are_imputed_and_unseen_categories_are_zeros(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d")
    prep = load_tabular(root)[0].preprocessing
    assert isinstance(prep, TablePreprocessing)
    new = pd.DataFrame({"x1": ["", "1.5"], "x2": ["?", "NA"], "color": ["purple", ""]})
    enc = prep.encode(new)
    x1, x2, color = prep.columns
    assert enc.ids == ["1", "2"] and enc.notes == []
    assert torch.allclose(enc.x[0, 0], torch.tensor((x1.fill - x1.mean) / x1.std, dtype=torch.float32))
    assert torch.allclose(enc.x[:, 1], torch.tensor((x2.fill - x2.mean) / x2.std, dtype=torch.float32))
    assert enc.x[0, 2:].tolist() == [0.0, 0.0, 0.0]  # purple was never seen
    assert enc.x[1, 2:].tolist() == [float(c == color.fill) for c in color.categories]  # the training mode


def test_the_one_hot_layout_does_not_depend_on_the_split(tmp_path: Path) -> None:
    text = "x,kind,label\n" + "".join(f"{i},{'rare' if i == 0 else 'common'},{i % 2}\n" for i in range(30))
    root = _write(tmp_path / "d" / "t.csv", text).parent
    widths = {load_tabular(root, seed=s)[0].in_features for s in range(6)}
    assert widths == {3}  # "rare" is in training for some seeds only; its slot is always there
    for s in range(6):
        (task,) = load_tabular(root, seed=s)
        prep = task.preprocessing
        assert isinstance(prep, TablePreprocessing)
        if "rare" not in prep.columns[1].seen:
            assert float(task.x_train[:, 1:].sum()) == task.x_train.shape[0]  # only "common"'s slot lit


def test_preprocessing_round_trips_through_json(tmp_path: Path) -> None:
    prep = load_tabular(write_tabular(tmp_path / "d"))[0].preprocessing
    assert isinstance(prep, TablePreprocessing)
    again = TablePreprocessing.from_dict(prep.to_dict())
    assert again == prep
    frame = read_table(tmp_path / "d" / "alpha.csv")
    assert torch.equal(again.encode(frame).x, prep.encode(frame).x)


def test_tasks_yaml_names_files_and_label_columns(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d")
    (root / "alpha.csv").rename(root / "first_file.csv")
    text = (root / "beta.csv").read_text().replace("x1,x2,color,label", "x1,x2,color,outcome")
    (root / "beta.csv").write_text(text)
    (root / "tasks.yaml").write_text("beta:\n  label_column: outcome\nfirst:\n  file: first_file.csv\n")
    assert [(n, p.name, lab) for n, p, lab, _ in task_files(root, "label")] == [
        ("beta", "beta.csv", "outcome"), ("first", "first_file.csv", "label")]
    assert [t.name for t in load_tabular(root)] == ["beta", "first"]
    assert [t.name for t in load_tabular(root, num_tasks=1)] == ["beta"]


def test_label_order() -> None:
    assert label_order(["10", "9", "2", "9"]) == ["2", "9", "10"]
    assert label_order(["b", "a", "10"]) == ["10", "a", "b"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"t.csv": ""}, "t.csv is empty; a task file needs a header row"),
        ({"t.csv": "x,label\n"}, "t.csv has a header but no data rows"),
        ({"t.csv": "x,y\n1,2\n"}, "t.csv has no label column 'label' (its columns: x, y); name it with "
                                  "--set label_column=NAME"),
        ({"t.csv": "x,label\n" + "1,a\n" * 10}, "task 't' (", ),
        ({"t.csv": "x,label\n1,a\n2,b\n3,a\n"}, "has too few rows for its train / validation / test splits"),
        ({"t.csv": "x,label\n1,a\n2,\n3,b\n"}, "t.csv: 1 row(s) have no label (first: row 2)"),
        ({"t.csv": "label\na\nb\na\nb\na\nb\n"}, "has no column besides its label 'label'"),
        ({"notes.txt": "x"}, "no CSV files in"),
        ({"t.csv": "x,label\n1,a\n", "tasks.yaml": "t: [1, 2]\n"}, "task 't' must be a mapping with file"),
        ({"t.csv": "x,label\n1,a\n", "tasks.yaml": "u:\n  file: nope.csv\n"}, "names the file"),
        ({"t.csv": "x,label\n1,a\n", "tasks.yaml": "t:\n  label_column: 3\n"}, "label_column must be text"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        _write(tmp_path / "d" / name, text)
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        load_tabular(tmp_path / "d")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_task_with_one_class_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "t.csv", "x,label\n" + "1,a\n" * 10)
    with pytest.raises(ValueError, match=r"task 't' .* has one class \('a'\); a task needs at least two"):
        load_tabular(tmp_path / "d")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tabular data folder .*nowhere does not exist"):
        load_tabular(tmp_path / "nowhere")


def test_new_rows_missing_a_training_column_are_refused_by_name(tmp_path: Path) -> None:
    prep = load_tabular(write_tabular(tmp_path / "d"))[0].preprocessing
    assert prep is not None
    new = _write(tmp_path / "new.csv", "x1,label,comment\n0.5,yes,hello\n")
    with pytest.raises(ValueError, match=r"new.csv lacks the training column\(s\) 'x2', 'color'; add them"):
        prep.encode(new)
    ok = _write(tmp_path / "ok.csv", "comment,x1,x2,color,label,other\nhi,0.5,1,red,yes,3\n")
    enc = prep.encode(ok)
    assert enc.notes == [f"ignored the column(s) comment, other of {ok}: not used in training"]  # not label
    bad = _write(tmp_path / "bad.csv", "x1,x2,color\n0.5,lots,red\n")
    with pytest.raises(ValueError, match=r"row 1: column 'x2' holds 'lots', not a number"):
        prep.encode(bad)


@pytest.mark.parametrize("name", UCI_DATASETS)
def test_an_exported_uci_file_loads_as_uci_does(shared_data: Path, tmp_path: Path, name: str) -> None:
    """``scripts/export_uci.py``'s files are the uci tasks: rows, splits, classes and features,
    bit for bit."""
    export_uci(tmp_path, shared_data, [name])
    (ours,) = load_tabular(tmp_path, seed=4)
    (theirs,) = load_uci(shared_data, seed=4, datasets=[name])
    assert ours.num_classes == theirs.num_classes
    for split in ("train", "val", "test"):
        (xa, ya), (xb, yb) = ours.split(split), theirs.split(split)
        assert torch.equal(ya, yb), split
        assert torch.equal(xa, xb), split  # bit for bit: compare tabular on them is compare uci


def test_the_export_can_write_integer_codes_as_categories(shared_data: Path, tmp_path: Path) -> None:
    export_uci(tmp_path, shared_data, ["australian", "iris"], categorical_levels=10)
    assert [t.name for t in load_tabular(tmp_path)] == ["australian", "iris"]  # tasks.yaml's order
    (aus, iris) = load_tabular(tmp_path)
    kinds = [c.kind for c in aus.preprocessing.columns]  # type: ignore[union-attr]
    assert "categorical" in kinds and aus.in_features > 14
    assert {c.kind for c in iris.preprocessing.columns} == {"numeric"}  # type: ignore[union-attr]
    assert export_labels(["good", "bad"]) == ["0-good", "1-bad"] and export_labels(["B", "M"]) == ["B", "M"]
