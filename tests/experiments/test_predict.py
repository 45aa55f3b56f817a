"""``softorder predict`` and ``softorder.load_run``: a run's stored preprocessing and best weights
applied to new inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import softorder
from own_data import IMAGE_FAST, TABULAR_FAST, write_graded, write_images, write_tabular
from softorder.benchmarks import build_net, load_config, load_tasks, train
from softorder.cli import main
from softorder.data.imagefolder import scan_folder
from softorder.data.tabular import read_table
from softorder.data.uci import uci_split
from softorder.nn.network import MultiTaskNet
from softorder.train.config import Config
from softorder.train.rundir import RunDir


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tab")
    root = write_tabular(base / "data", n=100)
    train(Config(benchmark="tabular", data_dir=str(root), seed=2, **TABULAR_FAST), base / "run", quiet=True)
    return base / "run"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("img")
    root = write_images(base / "data", per_class=10)
    cfg = Config(benchmark="imagefolder", data_dir=str(root), padding=1, **{**IMAGE_FAST, "steps": 20})
    train(cfg, base / "run", quiet=True)
    return base / "run"


def _own_net(run_dir: Path) -> tuple[Config, MultiTaskNet, list]:  # type: ignore[type-arg]
    """The run's net built as training built it, with best.pt loaded: the reference outputs."""
    cfg = load_config(RunDir(run_dir).config, saved=True)
    tasks = load_tasks(cfg)
    net = build_net(cfg, tasks)
    net.load_state_dict(torch.load(RunDir(run_dir).best, weights_only=True))
    return cfg, net.eval(), tasks


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("softorder: error: ") and err.count("\n") == 1, err
    return err


def test_load_run_round_trips(tabular_run: Path) -> None:
    run = softorder.load_run(tabular_run)
    cfg, net, tasks = _own_net(tabular_run)
    result = json.loads(RunDir(tabular_run).result.read_text())
    assert run.task_names == ["alpha", "beta"] == result["task_names"]
    assert run.config == cfg and not run.net.training
    assert {n: p.to_dict() for n, p in run.preprocessing.items()} == {
        t.name: t.preprocessing.to_dict() for t in tasks}
    theirs = net.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in run.net.state_dict().items())


def test_predictions_are_the_networks_outputs_on_the_same_rows(tabular_run: Path) -> None:
    run = softorder.load_run(tabular_run)
    cfg, net, tasks = _own_net(tabular_run)
    result = json.loads(RunDir(tabular_run).result.read_text())
    for t, task in enumerate(tasks):
        frame = read_table(Path(cfg.data.data_dir) / f"{task.name}.csv")
        y = np.asarray([run.preprocessing[task.name].classes.index(v) for v in frame["label"]])
        test_rows = uci_split(task.name, y, cfg.seed, cfg.data.fractions)[2]  # type: ignore[attr-defined]
        p = run.predict(task.name, frame.iloc[test_rows].drop(columns="label"))
        with torch.no_grad():
            expect = torch.softmax(net([task.x_test], tasks=[t])[0], 1)
        assert torch.allclose(p.probabilities, expect, atol=1e-6)
        assert p.labels == [p.classes[i] for i in expect.argmax(1).tolist()]
        wrong = np.mean([a != b for a, b in zip(p.labels, frame["label"].iloc[test_rows])])
        assert wrong == pytest.approx(result["test_error"][t])  # the run's own test error


def test_the_cli_writes_one_row_per_input(tabular_run: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(load_config(RunDir(tabular_run).config, saved=True).data.data_dir or "")
    new = tmp_path / "new.csv"
    new.write_text("name,x2,x1,color\nfirst,0.1,2.0,red\nsecond,-1,-1.5,\n")
    out = tmp_path / "out" / "p.csv"
    assert main(["predict", str(tabular_run), str(new), "--task", "alpha", "--out", str(out)]) == 0
    said = capsys.readouterr()
    assert f"softorder: note: ignored the column(s) name of {new}: not used in training" in said.err
    assert "2 prediction(s) of task alpha written to" in said.out
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "label", "p_no", "p_yes"] and table["id"].tolist() == [1, 2]
    p = softorder.load_run(tabular_run).predict("alpha", new)
    assert table["label"].tolist() == p.labels == ["yes", "no"]  # the rule: x1 + x2 + red > 0.5
    assert np.allclose(table[["p_no", "p_yes"]].to_numpy(), p.probabilities.numpy(), atol=1e-6)
    assert np.allclose(table[["p_no", "p_yes"]].sum(axis=1), 1.0, atol=1e-5)
    assert data.is_dir()


def test_a_pandas_frame_predicts_as_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The grade 1 of a new row is the category '1' whichever way it arrives: from the file (the
    CLI), or in a frame pandas typed as floats because a grade is empty (issue 23)."""
    root = write_graded(tmp_path / "data")
    train(Config(benchmark="tabular", data_dir=str(root), **{**TABULAR_FAST, "steps": 200}), tmp_path / "run",
          quiet=True)
    new = tmp_path / "new.csv"
    new.write_text("v,grade\n0.1,1\n0.2,\n-0.3,3\n0.4,2\n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "run"), str(new), "--out", str(out)]) == 0
    by_cli = pd.read_csv(out)
    typed = pd.read_csv(new)
    assert typed["grade"].dtype == np.float64  # 1.0, NaN, 3.0, 2.0
    p = softorder.load_run(tmp_path / "run").predict("graded", typed)
    assert p.labels == by_cli["label"].tolist() and p.labels[0] == "y"
    assert np.allclose(p.probabilities.numpy(), by_cli[["p_n", "p_y"]].to_numpy(), atol=1e-6)


def test_image_predictions_are_the_networks_outputs(image_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = softorder.load_run(image_run)
    cfg, net, tasks = _own_net(image_run)
    folder = scan_folder(Path(cfg.data.data_dir or ""))[1]
    test_rows = uci_split("light", folder.labels, cfg.seed, cfg.data.fractions)[2]  # type: ignore[attr-defined]
    p = run.predict("light", [folder.files[i] for i in test_rows])
    with torch.no_grad():
        expect = torch.softmax(net([tasks[1].x_test.float() / 255], tasks=[1])[0], 1)
    assert torch.allclose(p.probabilities, expect, atol=1e-6)
    out = tmp_path / "p.csv"
    argv = ["predict", str(image_run), str(folder.path / "dark"), "--task", "light", "--out", str(out)]
    assert main(argv) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["id", "label", "p_bright", "p_dark"] and len(table) == 10
    assert table["id"].iloc[0] == "00.png"
    # a folder with files predict cannot read says which it skipped
    mixed = tmp_path / "mixed"
    shutil.copytree(folder.path / "dark", mixed)
    (mixed / "photo.webp").write_bytes(b"RIFF")
    (mixed / "notes.txt").write_text("x")
    capsys.readouterr()
    assert main(["predict", str(image_run), str(mixed), "--task", "light", "--out", str(out)]) == 0
    assert ("softorder: note: skipped 2 file(s) that are not .png/.jpg/.jpeg images: notes.txt, photo.webp"
            in capsys.readouterr().err) and len(pd.read_csv(out)) == 10


def test_an_image_run_with_input_norm_rms_predicts_as_it_trained(tmp_path: Path) -> None:
    """Omniglot's input_norm=rms scales by the training images' RMS: the run keeps it."""
    root = write_images(tmp_path / "data", per_class=10)
    cfg = Config(benchmark="imagefolder", data_dir=str(root), padding=1, input_norm="rms",
                 **{**IMAGE_FAST, "steps": 20})
    train(cfg, tmp_path / "run", quiet=True)
    run = softorder.load_run(tmp_path / "run")
    _, net, tasks = _own_net(tmp_path / "run")
    assert run.net.encoders.scale == pytest.approx(net.encoders.scale, rel=1e-9) != 1.0  # type: ignore[attr-defined]
    folder = scan_folder(root)[0]
    rows = uci_split("bars", folder.labels, cfg.seed, cfg.data.fractions)[2]  # type: ignore[attr-defined]
    p = run.predict("bars", [folder.files[i] for i in rows])
    with torch.no_grad():
        expect = torch.softmax(net([tasks[0].x_test.float() / 255], tasks=[0])[0], 1)
    assert torch.allclose(p.probabilities, expect, atol=1e-6)


def test_bad_inputs_leave_no_file(tabular_run: Path, image_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.csv"
    out.write_text("earlier predictions\n")
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("x1,colour\n1,red\n")
    cases = [
        ([str(tabular_run), str(lacking), "--task", "alpha"], "lacks the training column(s) 'x2', 'color'"),
        ([str(tabular_run), str(lacking), "--task", "gamma"], "unknown task 'gamma'; the tasks of "),
        ([str(tabular_run), str(lacking)], "has the tasks alpha, beta; choose one with --task NAME"),
        ([str(tabular_run), str(tmp_path / "none.csv"), "--task", "alpha"], "none.csv does not exist"),
    ]
    (tmp_path / "empty.csv").write_text("")
    cases.append(([str(tabular_run), str(tmp_path / "empty.csv"), "--task", "beta"], "empty.csv is empty"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    cases.append(([str(image_run), str(broken), "--task", "bars"], "cannot read the image"))
    for argv, message in cases:
        assert message in _err(capsys, ["predict", *argv, "--out", str(out)]), argv
        assert out.read_text() == "earlier predictions\n"  # untouched: nothing half-written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    folder = tmp_path / "existing"
    folder.mkdir()
    err = _err(capsys, ["predict", str(tabular_run), str(lacking), "--task", "alpha", "--out", str(folder)])
    assert f"--out {folder} is a folder; name the CSV file, e.g. --out {folder / 'predictions.csv'}" in err
    assert ".tmp" not in err and list(folder.iterdir()) == []


def test_runs_that_cannot_predict(tmp_path: Path, tabular_run: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "synthetic"
    train(Config(benchmark="synthetic", tasks=2, width=8, steps=10, eval_every=10, checkpoint_every=10),
          other, quiet=True)
    capsys.readouterr()  # the run's health warning
    err = _err(capsys, ["predict", str(other), "x.csv"])
    assert "is a run of synthetic, which keeps no preprocessing" in err and "tabular, imagefolder" in err
    assert "holds no run (no config.yaml)" in _err(capsys, ["predict", str(tmp_path), "x.csv"])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("config.yaml", "preprocessing.json"):
        (unfinished / name).write_bytes((tabular_run / name).read_bytes())
    assert "has not finished; finish it with `softorder train --resume" in _err(
        capsys, ["predict", str(unfinished), "x.csv"])
    (unfinished / "best.pt").write_bytes(b"not a checkpoint")
    assert "best.pt does not fit the run's network" in _err(capsys, ["predict", str(unfinished), "x.csv"])


@pytest.mark.parametrize("ordering", ["gated", "routed"])
def test_gated_and_routed_runs_predict_as_they_scored(tmp_path: Path, ordering: str) -> None:
    """``predict`` runs the learned orderings as evaluation did: a gated core's per-row mixture, a
    routed core's chosen layer per depth; the predictions give the run's own test error."""
    root = write_tabular(tmp_path / "data", n=100)
    cfg = Config(benchmark="tabular", data_dir=str(root), seed=2, ordering=ordering, **TABULAR_FAST)
    train(cfg, tmp_path / "run", quiet=True)
    run = softorder.load_run(tmp_path / "run")
    result = json.loads(RunDir(tmp_path / "run").result.read_text())
    for t, name in enumerate(run.task_names):
        frame = read_table(root / f"{name}.csv")
        y = np.asarray([run.preprocessing[name].classes.index(v) for v in frame["label"]])
        test_rows = uci_split(name, y, cfg.seed, cfg.data.fractions)[2]  # type: ignore[attr-defined]
        p = run.predict(name, frame.iloc[test_rows].drop(columns="label"))
        wrong = np.mean([a != b for a, b in zip(p.labels, frame["label"].iloc[test_rows])])
        assert wrong == pytest.approx(result["test_error"][t])
