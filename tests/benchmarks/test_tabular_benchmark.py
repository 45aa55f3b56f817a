"""``softorder train tabular`` / ``compare tabular``: a folder of CSV files, one task each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from own_data import TABULAR_FAST, write_tabular
from softorder.benchmarks import build_net, load_tasks, train
from softorder.cli import main
from softorder.experiments.compare import compare
from softorder.train.config import Config
from softorder.train.rundir import RunDir


def test_a_brief_run_beats_chance_and_records_its_preprocessing(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d", n=150)
    cfg = Config(benchmark="tabular", data_dir=str(root), **TABULAR_FAST)
    r = train(cfg, tmp_path / "run", quiet=True)
    assert r["task_names"] == ["alpha", "beta"]
    assert r["test_error"][0] < 0.3 and r["test_error"][1] < 0.45  # chance: 0.5 and about 0.6
    saved = json.loads(RunDir(tmp_path / "run").preprocessing.read_text())
    tasks = load_tasks(cfg)
    assert saved["tasks"] == {t.name: t.preprocessing.to_dict() for t in tasks}  # type: ignore[union-attr]


def test_every_task_gets_an_encoder_sized_from_its_columns(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d")
    beta = (root / "beta.csv").read_text()
    (root / "beta.csv").write_text(beta.replace("x1,x2,color,label", "x1,x2,kind,label"))
    text = (root / "alpha.csv").read_text().splitlines()
    (root / "alpha.csv").write_text("\n".join([text[0] + ",x3"] + [r + ",1" for r in text[1:]]) + "\n")
    cfg = Config(benchmark="tabular", data_dir=str(root), **TABULAR_FAST)
    tasks = load_tasks(cfg)
    net = build_net(cfg, tasks)
    assert net.encoders.in_features == [6, 5] == [t.in_features for t in tasks]  # type: ignore[attr-defined]
    assert net.decoders.num_classes == [2, 3]


def test_compare_trains_vectorised_trials_each_with_its_preprocessing(tmp_path: Path) -> None:
    root = write_tabular(tmp_path / "d", n=60)
    cfg = Config(benchmark="tabular", data_dir=str(root), **{**TABULAR_FAST, "steps": 40})
    s = compare(cfg, tmp_path / "cmp", ["parallel", "soft"], trials=2, workers=1, progress=False)
    assert set(s["methods"]) == {"parallel", "soft"}
    for method in ("parallel", "soft"):
        for k in range(2):
            run = RunDir(tmp_path / "cmp" / "runs" / method / f"trial{k}")
            assert run.finished() and run.preprocessing.is_file()
            assert json.loads(run.result.read_text())["vectorised_trials"] == 2


def test_no_data_dir_or_a_bad_file_leaves_no_run_folder(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "tabular", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "tabular reads your own data: give --data-dir DIR" in capsys.readouterr().err
    root = write_tabular(tmp_path / "d")
    assert main(["train", "tabular", "--data-dir", str(root), "--set", "label_column=y", "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softorder: error: ") and "has no label column 'y'" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
