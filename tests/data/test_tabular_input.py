"""The user's CSV files read as they mean them (issue 23): missing-value markers, numbers with
thousands separators, declared column types, labels that are numbers, a pandas table typed by
pandas, and one-line errors for duplicate names, ragged rows and a continuous label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from softorder.data.tablefile import MISSING, read_table
from softorder.data.tabular import TablePreprocessing, load_tabular


def _numeric_task(root: Path, odd: str, n: int = 60, name: str = "t") -> Path:
    """A task of ``n`` rows whose column ``x`` is numbers but for row 5, which holds ``odd``."""
    rng = np.random.default_rng(0)
    x = [f"{v:.2f}" for v in rng.normal(0, 1, n)]
    x[5] = f'"{odd}"' if "," in odd else odd
    lines = ["x,label"] + [f"{v},{'a' if i % 2 else 'b'}" for i, v in enumerate(x)]
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return root


def _prep(task: object) -> TablePreprocessing:
    prep = getattr(task, "preprocessing", None)
    assert isinstance(prep, TablePreprocessing)
    return prep


@pytest.mark.parametrize("marker", ["NaN", "nan", "N/A", "n/a", "null", "NULL", "None", "-", "#N/A", "NA",
                                    "?", "", "inf", "-inf", "Infinity"])
def test_a_missing_value_marker_keeps_a_numeric_column_numeric(tmp_path: Path, marker: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (task,) = load_tabular(_numeric_task(tmp_path / "d", marker))
    (x,) = _prep(task).columns
    assert x.kind == "numeric" and task.in_features == 1
    assert capsys.readouterr().err == ""  # a marker is missing, as documented: nothing to warn about


def test_the_documented_markers_are_the_ones_read_as_missing() -> None:
    for marker in ("NaN", "nan", "N/A", "n/a", "null", "NULL", "None", "-", "#N/A", "NA", "?", ""):
        assert marker in MISSING
    frame = read_table(pd.DataFrame({"a": ["1", "NULL", None, "n/a", "x"]}))
    assert frame["a"].isna().tolist() == [False, True, True, True, False]


def test_thousands_separators_are_numbers(tmp_path: Path) -> None:
    (task,) = load_tabular(_numeric_task(tmp_path / "d", "1,234"))
    prep = _prep(task)
    assert prep.columns[0].kind == "numeric"
    enc = prep.encode(pd.DataFrame({"x": ["1,234", "1234"]}))
    assert torch.equal(enc.x[0], enc.x[1])  # 1,234 is 1234


def test_a_numeric_column_but_for_a_few_cells_warns_in_one_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = _numeric_task(tmp_path / "d", "oops")
    (task,) = load_tabular(root)
    assert _prep(task).columns[0].kind == "categorical"  # as before, but said
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("softorder: warning: column 'x' of "), err
    assert "'oops'" in err and "tasks.yaml" in err and "numeric" in err and "categorical" in err
    load_tabular(root, seed=1)
    assert capsys.readouterr().err == ""  # once per process, not once per trial
    (root / "tasks.yaml").write_text("t:\n  columns:\n    x: numeric\n")
    (task,) = load_tabular(root)
    prep = _prep(task)
    assert prep.columns[0].kind == "numeric"  # declared: 'oops' is a missing value
    assert capsys.readouterr().err == ""
    again = TablePreprocessing.from_dict(prep.to_dict())
    assert again == prep and again.columns[0].declared
    enc = again.encode(pd.DataFrame({"x": ["oops", ""]}))
    assert torch.equal(enc.x[0], enc.x[1])  # in predictions too


def test_tasks_yaml_declares_column_types(tmp_path: Path) -> None:
    rows = "".join(f"{i % 3},{i},{'a' if i % 2 else 'b'}\n" for i in range(30))
    root = tmp_path / "d"
    root.mkdir()
    (root / "t.csv").write_text("code,x,label\n" + rows)
    assert [c.kind for c in _prep(load_tabular(root)[0]).columns] == ["numeric", "numeric"]
    (root / "tasks.yaml").write_text("t:\n  columns: {code: categorical}\n")
    (task,) = load_tabular(root)
    code, x = _prep(task).columns
    assert (code.kind, code.categories, x.kind) == ("categorical", ["0", "1", "2"], "numeric")
    assert task.in_features == 4


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("t:\n  columns: {code: number}\n", "code must be numeric or categorical, got 'number'"),
        ("t:\n  columns: [code]\n", "columns must map each column name to numeric or categorical"),
        ("t:\n  columns: {colour: numeric}\n", "declares the column(s) 'colour', which t.csv does not have"),
        ("t:\n  columns: {label: categorical}\n", "columns declares 'label', which is the label column"),
    ],
)
def test_bad_column_declarations_are_one_line_errors(tmp_path: Path, yaml_text: str, message: str) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "t.csv").write_text("code,label\n" + "".join(f"{i % 3},{'ab'[i % 2]}\n" for i in range(20)))
    (root / "tasks.yaml").write_text(yaml_text)
    with pytest.raises(ValueError) as e:
        load_tabular(root)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_labels_that_are_numbers_compare_as_numbers(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    labels = ["0", "1", "1.0", "2", "0.0", "1e0"] * 5
    (root / "t.csv").write_text("x,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    (task,) = load_tabular(root)
    assert _prep(task).classes == ["0", "1", "2"] and task.num_classes == 3  # as the first row spells it
    y = torch.cat([task.y_train, task.y_val, task.y_test])
    assert sorted(y.tolist()) == [0] * 10 + [1] * 15 + [2] * 5


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "t.csv").write_text("a,b, a,label\n" + "1,2,3,x\n4,5,6,y\n" * 5)
    with pytest.raises(ValueError, match=r"t.csv has the column name\(s\) 'a' more than once; rename them"):
        load_tabular(root)
    with pytest.raises(ValueError, match=r"the table has the column name\(s\) 'a' more than once"):
        read_table(pd.DataFrame([[1, 2]], columns=["a", "a"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n" + "1,2,y,\n3,4,n,\n" * 5, "t.csv, line 2: 4 fields, but the header has 3 (a trail"),
        ("a,b,label\n1,2,y\n\n3,4\n" + "5,6,n\n" * 9, "t.csv, line 4: 2 fields, but the header has 3;"),
        ('a,b,label\n1,"2\n2",y\n3,4,n,5\n' + "5,6,n\n" * 9, "t.csv, line 4: 4 fields, but the header has 3"),
    ],
)
def test_a_row_with_another_field_count_is_refused(tmp_path: Path, text: str, message: str) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "t.csv").write_text(text)
    with pytest.raises(ValueError) as e:
        load_tabular(root)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_continuous_label_is_named(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    rng = np.random.default_rng(0)
    (root / "t.csv").write_text("x,label\n" + "".join(f"{i},{v:.4f}\n" for i, v in enumerate(rng.random(60))))
    with pytest.raises(ValueError, match=r"task 't' \(.*t.csv\): its label column 'label' has 60 distinct "
                                         r"values in 60 rows and looks continuous"):
        load_tabular(root)


def test_a_frame_typed_by_pandas_encodes_as_the_file(tmp_path: Path) -> None:
    """pandas reads 1 as 1.0 in a column with an empty cell: the category is still '1'."""
    root = tmp_path / "d"
    root.mkdir()
    grades = ["1", "2", "3", "x"]
    rows = "".join(f"{i},{grades[i % 4]},{'ab'[i % 2]}\n" for i in range(40))
    (root / "t.csv").write_text("v,grade,label\n" + rows)
    prep = _prep(load_tabular(root)[0])
    assert prep.columns[1].kind == "categorical"
    new = tmp_path / "new.csv"
    new.write_text("v,grade\n1,1\n2,\n3,3\n")
    typed = pd.read_csv(new)
    assert typed["grade"].dtype == np.float64  # 1.0, NaN, 3.0
    assert torch.equal(prep.encode(typed).x, prep.encode(new).x)
    assert torch.equal(prep.encode(pd.DataFrame({"v": [1], "grade": [1]})).x, prep.encode(new).x[:1])
    assert typed["grade"].tolist()[0] == 1.0  # the caller's frame is not changed


def test_a_number_matching_two_categories_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    grades = ["1", "1.0", "2"]
    rows = "".join(f"{i},{grades[i % 3]},{'ab'[i % 2]}\n" for i in range(30))
    (root / "t.csv").write_text("v,grade,label\n" + rows)
    (root / "tasks.yaml").write_text("t:\n  columns: {grade: categorical}\n")
    prep = _prep(load_tabular(root)[0])
    with pytest.raises(ValueError, match=r"the table's column 'grade' holds the number 1.0, which is two "
                                         r"categories of training \('1', '1.0'\); give the column as text"):
        prep.encode(pd.DataFrame({"v": [1.0], "grade": [1.0]}))
