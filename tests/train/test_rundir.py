"""The run folder has one owner: a fresh run refuses or cleans leftovers, a resume applies what it
can and refuses the rest, a cut metrics line does not block a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softorder.benchmarks import train
from softorder.data.synthetic import make_synthetic
from softorder.train.checkpoint import load_checkpoint
from softorder.train.config import Config
from softorder.train.config_files import load_config
from softorder.train.rundir import RunDir
from softorder.train.trainer import TrainingDiverged

CFG = Config(
    benchmark="synthetic", tasks=2, width=8, steps=40, eval_every=10, checkpoint_every=20, dropout=0.0,
    lr=3e-3,
)


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in RunDir(run).read_metrics()]


def test_fresh_run_into_leftovers_is_refused_not_appended(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(CFG, run, quiet=True)
    (run / "checkpoint.pt").unlink()  # what the old error advised
    with pytest.raises(FileExistsError, match=r"already holds a run \(config.yaml, metrics.jsonl"):
        train(CFG, run, quiet=True)
    assert _steps(run) == [10, 20, 30, 40]  # untouched


def test_clean_start_removes_leftovers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(CFG, run, quiet=True)
    (run / "checkpoint.pt").unlink()
    (run / "result.json").unlink()
    train(CFG, run, quiet=True, clean=True)
    assert _steps(run) == [10, 20, 30, 40]


def test_out_on_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file; choose a folder for --out"):
        train(CFG, f, quiet=True)


def test_resume_applies_lr_and_records_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(CFG.replace(steps=20), run, quiet=True)
    (run / "result.json").unlink()
    cfg = load_config(run / "config.yaml", ["lr=0.5", "steps=40", "weight_decay=1e-4"])
    train(cfg, run, resume=True, quiet=True)
    groups = load_checkpoint(run / "checkpoint.pt")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.5, 0.5]  # net and S (s_lr null follows lr)
    assert groups[0]["weight_decay"] == 1e-4
    assert load_config(run / "config.yaml").optim.lr == 0.5


def test_resume_with_the_same_lr_continues_bit_for_bit(tmp_path: Path) -> None:
    full = train(CFG, tmp_path / "full", quiet=True)
    train(CFG.replace(steps=20), tmp_path / "part", quiet=True)
    resumed = train(CFG, tmp_path / "part", resume=True, quiet=True)
    assert resumed["test_loss"] == full["test_loss"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 10}, r"steps=10 is below the 20 steps the run has already trained"),
        ({"ordering": "parallel"}, r"--resume cannot change ordering \('soft' -> 'parallel'\)"),
        ({"width": 16}, r"--resume cannot change width"),
        ({"seed": 3}, r"--resume cannot change seed"),
    ],
)
def test_resume_refuses_what_it_cannot_apply(tmp_path: Path, change: dict, message: str) -> None:
    run = tmp_path / "run"
    train(CFG.replace(steps=20), run, quiet=True)
    with pytest.raises(ValueError, match=message):
        train(CFG.replace(**change), run, resume=True, quiet=True)


def test_cut_last_metrics_line_does_not_block_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(CFG.replace(steps=20), run, quiet=True)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "time": 0.1, "train_lo')  # a kill while the line was written
    train(CFG, run, resume=True, quiet=True)
    assert _steps(run) == [10, 20, 30, 40]
    damaged = RunDir(tmp_path / "damaged")
    damaged.path.mkdir()
    damaged.metrics.write_text('{"step": 10}\nnot json\n{"step": 30}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a JSON record"):
        damaged.read_metrics()


def test_divergence_before_any_checkpoint_says_none_was_written(tmp_path: Path) -> None:
    tasks = make_synthetic(num_tasks=2, seed=0)
    tasks[1].x_train[:] = float("nan")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written") as e:
        train(CFG, tmp_path / "nan", tasks=tasks, quiet=True)
    assert "checkpoint.pt" not in str(e.value)


def test_empty_split_is_an_error_naming_the_task() -> None:
    from softorder.data.tasks import TaskData

    x, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"task 'iris': the test split is empty \(train 4, val 4, test 0"):
        TaskData("iris", 2, x, y, x, y, x[:0], y[:0])


def test_results_json_written_strict(tmp_path: Path) -> None:
    from softorder.atomic import write_json

    write_json(tmp_path / "r.json", {"p": float("nan"), "ci": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"p": None, "ci": [None, 1.0]}
