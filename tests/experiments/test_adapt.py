"""``softorder adapt``: frozen learned layers reused on new tasks (paper Sec. 6)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from softorder.benchmarks import train
from softorder.cli import main
from softorder.data.synthetic import make_synthetic
from softorder.experiments.adapt import MODES, adapt, load_source, run_modes, subsample_shots
from softorder.train.config import Config

FAST = {"steps": 60, "eval_every": 20, "checkpoint_every": 20}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("src") / "run"
    cfg = Config(benchmark="synthetic", tasks=3, width=16, dropout=0.0, lr=3e-3, **FAST)
    train(cfg, out, quiet=True)
    return out


def _bank(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("core.bank.")}


def test_modes_freeze_bank_and_learn(source_run: Path, tmp_path: Path) -> None:
    new = make_synthetic(num_tasks=2, seed=123)
    s = run_modes(source_run, new, MODES, tmp_path / "adapt", FAST)
    assert [r["mode"] for r in s["results"]] == list(MODES)
    for r in s["results"]:
        assert 0.0 <= r["mean_test_error"] <= 1.0
    assert json.loads((tmp_path / "adapt" / "adapt_results.json").read_text()) == s
    src = _bank(source_run / "best.pt")
    for mode in ("soft", "parallel", "gated", "routed"):  # frozen: bit-identical to the source run's layers
        for f in ("best.pt", "checkpoint.pt"):
            state = torch.load(tmp_path / "adapt" / mode / f, map_location="cpu", weights_only=True)
            adapted = _bank(tmp_path / "adapt" / mode / f) if f == "best.pt" else {
                k: v for k, v in state["model"].items() if k.startswith("core.bank.")
            }
            assert adapted.keys() == src.keys()
            assert all(torch.equal(adapted[k], src[k]) for k in src), (mode, f)
    soft = torch.load(tmp_path / "adapt" / "soft" / "checkpoint.pt", weights_only=True)["model"]
    assert soft["core.S"].shape == (2, 4, 4) and soft["core.S"].abs().sum() > 0  # S learned from zero
    scratch = _bank(tmp_path / "adapt" / "scratch" / "best.pt")
    assert any(not torch.equal(scratch[k], src[k]) for k in src)  # trained from scratch
    frozen = {r["mode"]: r["frozen_parameters"] for r in s["results"]}
    assert frozen["scratch"] == 0 < frozen["soft"] == frozen["parallel"] == frozen["gated"] == frozen["routed"]  # noqa: E501
    gated = torch.load(tmp_path / "adapt" / "gated" / "checkpoint.pt", weights_only=True)["model"]
    assert gated["core.gate_out"].abs().sum() > 0  # the new tasks' gates learned from zero


def test_subsample_shots_keeps_k_per_class() -> None:
    task = make_synthetic(num_tasks=1, seed=5)[0]
    for k in (1, 5):
        sub = subsample_shots(task, k, seed=3)
        counts = torch.bincount(sub.y_train, minlength=task.num_classes)
        assert counts.tolist() == [k] * task.num_classes
        assert torch.equal(sub.x_train, subsample_shots(task, k, seed=3).x_train)  # seeded
        assert torch.equal(sub.x_test, task.x_test)
    assert subsample_shots(task, None) is task
    with pytest.raises(ValueError, match="shots must be at least 1"):
        subsample_shots(task, 0)


def test_missing_best_is_a_clear_error(source_run: Path, tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text((source_run / "config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match=r"best\.pt does not exist.*--resume"):
        adapt(tmp_path, make_synthetic(num_tasks=1), FAST, "soft")
    with pytest.raises(FileNotFoundError, match=r"config\.yaml does not exist"):
        load_source(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown adapt mode 'hard'"):
        adapt(source_run, make_synthetic(num_tasks=1), FAST, "hard", out=tmp_path / "x")


def test_width_override_is_rejected(source_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"(?s)does not fit the adapted net.*override width"):
        adapt(source_run, make_synthetic(num_tasks=1), {**FAST, "width": 8}, "soft", out=tmp_path / "w")


def test_cli_adapt_synthetic(source_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    rc = main(["adapt", str(source_run), "--new-tasks", "2", "--shots", "5", "--modes", "soft,parallel",
               "--out", str(out), "--set", "steps=20", "--set", "eval_every=20", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean test error" in text and "parallel" in text
    s = json.loads((out / "adapt_results.json").read_text())
    assert s["shots"] == 5 and s["train_rows"] == [15, 15]  # 5 per class × 3 classes


def test_cli_adapt_several_shot_counts(
    source_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "k"
    rc = main(["adapt", str(source_run), "--new-tasks", "2", "--shots", "1,all",
               "--modes", "parallel,scratch", "--out", str(out), "--set", "steps=20",
               "--set", "eval_every=20", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean test error by shots per class" in text
    summary = json.loads((out / "adapt_summary.json").read_text())
    assert list(summary["mean_test_error"]) == ["1", "all"]
    assert set(summary["mean_test_error"]["1"]) == {"parallel", "scratch"}
    one = json.loads((out / "shots-1" / "adapt_results.json").read_text())
    assert one["shots"] == 1 and one["train_rows"] == [3, 3]
    assert json.loads((out / "shots-all" / "adapt_results.json").read_text())["shots"] is None
    scratch = torch.load(out / "shots-1" / "scratch" / "best.pt", weights_only=True)
    assert scratch["core.bank.weight"].shape[0] == 2 * 4  # its own 4 layers per new task (single)
    with pytest.raises(SystemExit):
        main(["adapt", str(source_run), "--shots", "1,1"])


def test_omniglot_adapt(shared_data: Path, tmp_path: Path) -> None:
    """The Omniglot path end to end, tiny (28 px, 8 channels): a 2-alphabet run, 1 new alphabet."""
    if not (shared_data / "omniglot").is_dir():
        pytest.skip("no omniglot in ../shared/data")
    start = time.perf_counter()
    cfg = Config(benchmark="omniglot", data_dir=str(shared_data), tasks=2, image_size=28, channels=8,
                 padding=1, dropout=0.0, **{**FAST, "steps": 20})
    train(cfg, tmp_path / "run", quiet=True)
    rc = main(["adapt", str(tmp_path / "run"), "--new-tasks", "1", "--shots", "1", "--modes", "soft,parallel",
               "--out", str(tmp_path / "adapt"), "--set", "steps=20", "--quiet"])
    assert rc == 0
    s = json.loads((tmp_path / "adapt" / "adapt_results.json").read_text())
    assert s["tasks"] and all(0 <= r["mean_test_error"] <= 1 for r in s["results"])
    assert time.perf_counter() - start < 60


def test_omniglot_background_run_adapts_to_evaluation_alphabets(shared_data: Path) -> None:
    """The official split: a run on the 30 background alphabets gets new tasks from the 20
    evaluation alphabets (and --skip/--new-tasks stay within those 20)."""
    if not (shared_data / "omniglot").is_dir():
        pytest.skip("no omniglot in ../shared/data")
    from softorder.data.omniglot import ALPHABET_SETS
    from softorder.experiments.adapt import new_tasks_for

    source = Config(benchmark="omniglot", data_dir=str(shared_data), alphabet_set="background", image_size=28)
    new = new_tasks_for(source, "omniglot", 20)
    assert sorted(t.name for t in new) == sorted(ALPHABET_SETS["evaluation"])
    assert [t.name for t in new_tasks_for(source, "omniglot", 2, skip=3)] == [t.name for t in new[3:5]]
    with pytest.raises(ValueError, match="20 evaluation alphabets"):
        new_tasks_for(source, "omniglot", 18, skip=3)


def test_new_tasks_follow_the_adaptation_seed_not_the_source_run() -> None:
    """Adaptations of different source runs with the same seed score on the same test data."""
    from softorder.experiments.adapt import new_tasks_for

    a, b = Config(benchmark="synthetic", seed=1), Config(benchmark="synthetic", seed=2)
    same = [new_tasks_for(src, "synthetic", 2, seed=7) for src in (a, b)]
    assert all(torch.equal(x.x_test, y.x_test) for x, y in zip(*same))
    default = [new_tasks_for(src, "synthetic", 2) for src in (a, b)]  # each run's own seed
    assert not torch.equal(default[0][0].x_test, default[1][0].x_test)


def test_corrupt_best_weights_are_a_clear_error(
    source_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(source_run, broken)
    data = (broken / "best.pt").read_bytes()
    (broken / "best.pt").write_bytes(data[: len(data) // 2])
    assert main(["adapt", str(broken), "--new-tasks", "1", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"softorder: error: {broken / 'best.pt'} is unreadable") and "Traceback" not in err
