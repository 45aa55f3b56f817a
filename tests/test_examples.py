"""``examples/`` is what ``examples/make_examples.py`` writes, and the docs' three commands run on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from softorder.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--set", "steps=60", "--set", "eval_every=20", "--set", "checkpoint_every=60", "--quiet"]


def test_the_shipped_examples_are_the_scripts_output(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(tmp_path)
    shipped = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*")
                     if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == made
    for rel in made:
        if rel.suffix == ".png":  # pixels: PNG compression may differ between Pillow versions
            a, b = (np.asarray(Image.open(root / rel)) for root in (EXAMPLES, tmp_path))
            assert np.array_equal(a, b), rel
        else:
            assert (EXAMPLES / rel).read_text() == (tmp_path / rel).read_text(), rel


def test_train_compare_and_predict_on_the_tabular_example(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = str(EXAMPLES / "tabular")
    assert main(["train", "tabular", "--data-dir", data, "--out", str(tmp_path / "run"), *FAST]) == 0
    out = tmp_path / "p.csv"
    new = str(EXAMPLES / "new_fruit.csv")
    assert main(["predict", str(tmp_path / "run"), new, "--task", "fruit", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 8 and list(table.columns) == ["id", "label", "p_overripe", "p_ripe", "p_unripe"]
    assert "ignored the column(s) batch" in capsys.readouterr().err
    assert main(["compare", "tabular", "--data-dir", data, "--trials", "2", "--orderings", "parallel,soft",
                 "--workers", "1", "--out", str(tmp_path / "cmp"), "--set", "steps=40",
                 "--set", "eval_every=20", "--set", "checkpoint_every=40"]) == 0
    assert (tmp_path / "cmp" / "results.md").is_file()


def test_train_and_predict_on_the_image_example(tmp_path: Path) -> None:
    small = ["--set", "image_size=16", "--set", "channels=8", "--set", "num_layers=2", "--set", "steps=20",
             "--set", "eval_every=20", "--set", "checkpoint_every=20", "--quiet"]
    data = str(EXAMPLES / "images")
    assert main(["train", "imagefolder", "--data-dir", data, "--out", str(tmp_path / "run"), *small]) == 0
    out = tmp_path / "p.csv"
    folder = EXAMPLES / "images" / "shapes" / "square"
    assert main(["predict", str(tmp_path / "run"), str(folder), "--task", "shapes", "--out", str(out)]) == 0
    assert pd.read_csv(out)["id"].tolist()[:2] == ["square_00.png", "square_01.png"]
