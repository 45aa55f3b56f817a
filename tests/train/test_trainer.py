from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softorder.benchmarks import train
from softorder.data.synthetic import make_synthetic
from softorder.train.checkpoint import load_checkpoint
from softorder.train.config import Config
from softorder.train.sources import TaskSampler
from softorder.train.trainer import TrainingDiverged

CFG = Config(
    benchmark="synthetic",
    tasks=3,
    width=16,
    steps=60,
    eval_every=20,
    checkpoint_every=20,
    dropout=0.1,
    lr=3e-3,
)


def test_train_writes_run_and_learns(tmp_path: Path) -> None:
    r = train(CFG.replace(steps=300, checkpoint_every=100), tmp_path / "run", quiet=True)
    out = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "result.json", "checkpoint.pt", "best.pt"):
        assert (out / name).exists(), name
    assert any((out / "tb").iterdir())
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs] == list(range(20, 301, 20))
    assert len(recs[0]["S"]) == 3 and len(recs[0]["S"][0]) == 4
    best = min(recs, key=lambda x: x["mean_val_loss"])
    assert r["best_step"] == best["step"]
    assert r["mean_val_loss"] == pytest.approx(best["mean_val_loss"], rel=1e-5)
    assert r["mean_test_error"] < 0.45  # 3 classes: chance is ~0.67
    assert json.loads((out / "result.json").read_text()) == r


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    a = train(CFG, tmp_path / "a", quiet=True)
    b = train(CFG, tmp_path / "b", quiet=True)
    c = train(CFG.replace(seed=1), tmp_path / "c", quiet=True)
    assert a["test_loss"] == b["test_loss"]
    assert a["test_loss"] != c["test_loss"]


def test_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    train(CFG, tmp_path / "a", quiet=True)
    with pytest.raises(FileExistsError, match="--resume"):
        train(CFG, tmp_path / "a", quiet=True)


def test_resume_in_process_matches_uninterrupted(tmp_path: Path) -> None:
    full = train(CFG, tmp_path / "full", quiet=True)
    train(CFG.replace(steps=40), tmp_path / "part", quiet=True)
    (tmp_path / "part" / "result.json").unlink()
    resumed = train(CFG, tmp_path / "part", resume=True, quiet=True)
    assert resumed["test_loss"] == full["test_loss"]
    lines = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [20, 40, 60]


def test_a_routed_run_resumed_with_more_steps_keeps_its_annealing(tmp_path: Path) -> None:
    """The router's temperature falls over ``route_anneal`` of the steps the run STARTED with (kept
    in its checkpoint): 40 steps with route_anneal 0.5 resumed to 60 = 60 steps with 1/3."""
    routed = CFG.replace(ordering="routed", dropout=0.0)
    full = train(routed.replace(route_anneal=1 / 3), tmp_path / "full", quiet=True)
    train(routed.replace(steps=40, route_anneal=0.5), tmp_path / "part", quiet=True)
    (tmp_path / "part" / "result.json").unlink()
    resumed = train(routed.replace(route_anneal=0.5), tmp_path / "part", resume=True, quiet=True)
    assert resumed["test_loss"] == full["test_loss"] and resumed["route_choice"] == full["route_choice"]
    state = load_checkpoint(tmp_path / "part" / "checkpoint.pt")["model"]
    assert int(state["core.anneal_steps"]) == 20 and int(state["core.route_step"]) == 60


def test_nan_loss_stops_and_names_task_and_step(tmp_path: Path) -> None:
    tasks = make_synthetic(num_tasks=3, seed=0)
    tasks[1].x_train[5:] = float("inf")  # every batch of task 1 after the first rows diverges
    with pytest.raises(TrainingDiverged, match=r"task 1 \(synthetic1\) .* at step \d+"):
        train(CFG.replace(steps=200), tmp_path / "nan", tasks=tasks, quiet=True)


def test_nan_after_checkpoint_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    train(CFG.replace(steps=40), tmp_path / "run", quiet=True)
    poisoned = make_synthetic(num_tasks=3, seed=0)
    poisoned[2].x_train[:] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"task 2 \(synthetic2\) is nan at step 41"):
        train(CFG, tmp_path / "run", tasks=poisoned, resume=True, quiet=True)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 40
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_sampler_cycles_through_every_row() -> None:
    s = TaskSampler(10, 4, seed=0)
    seen = torch.cat([s.next() for _ in range(5)])
    assert sorted(seen[:10].tolist()) == list(range(10))
    assert len(seen) == 20


def test_unlabelled_rows_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"label 7 at row 0 is outside 0\.\.2"):
        tasks = make_synthetic(num_tasks=2, seed=0)
        tasks[0].y_train[0] = 7
        train(CFG.replace(tasks=2), tmp_path / "x", tasks=tasks, quiet=True)


def test_lr_warmup_ramps_the_learning_rates_linearly() -> None:
    from softorder.benchmarks import build_net, load_tasks
    from softorder.train.optim import make_optimizer, warm_up

    cfg = CFG.replace(lr=0.01, s_lr=0.1, lr_warmup=4)
    net = build_net(cfg, load_tasks(cfg))
    opt = make_optimizer(net, cfg)
    seen = []
    for step in (1, 2, 4, 9):
        warm_up(opt, cfg, step)
        seen += [g["lr"] for g in opt.param_groups]
    assert seen == pytest.approx([0.0025, 0.025, 0.005, 0.05, 0.01, 0.1, 0.01, 0.1])
    off = make_optimizer(net, CFG)
    warm_up(off, CFG, 1)
    assert [g["lr"] for g in off.param_groups] == [CFG.optim.lr, CFG.optim.lr]


def test_loss_guard_off_the_cpu_checks_a_step_during_the_next_one() -> None:
    from softorder.train.trainer import LossGuard

    now = LossGuard(["a", "b"], None)
    with pytest.raises(TrainingDiverged, match=r"task 1 \(b\) is nan at step 3"):
        now(torch.tensor([0.5, float("nan")]), 3)  # on the CPU: at once
    late = LossGuard(["a", "b"], None, defer=True)  # what a device gets: no host read per step
    late(torch.tensor([0.5, float("nan")]), 3)
    with pytest.raises(TrainingDiverged, match=r"task 1 \(b\) is nan at step 3"):
        late(torch.tensor([0.4, 0.4]), 4)  # the next step reads step 3's losses
    late(torch.tensor([float("inf"), 0.4]), 5)
    with pytest.raises(TrainingDiverged, match=r"task 0 \(a\) is inf at step 5"):
        late.flush()  # before an evaluation or a checkpoint
    late.flush()  # nothing pending
