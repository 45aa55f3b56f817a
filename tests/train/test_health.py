"""Run health: dead units and activation scale per depth, entropy of S, warnings, compare marks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softorder.benchmarks import train
from softorder.data.synthetic import make_synthetic
from softorder.experiments.summary import results_markdown, summarise
from softorder.train import health
from softorder.train.config import Config
from softorder.train.metrics import Evaluation, Scores
from softorder.train.rundir import RunDir

CFG = Config(
    benchmark="synthetic", tasks=2, width=8, steps=40, eval_every=10, checkpoint_every=20, dropout=0.0
)


def _net(ordering: str) -> tuple[torch.nn.Module, list]:
    from softorder.nn.network import dense_net

    torch.manual_seed(0)
    tasks = make_synthetic(num_tasks=2, seed=0)
    sizes, classes = [t.in_features for t in tasks], [t.num_classes for t in tasks]
    net = dense_net(sizes, classes, width=8, ordering=ordering)
    return net, tasks


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted", "soft"])
def test_measure_alive_and_dead_cores(ordering: str) -> None:
    net, tasks = _net(ordering)
    h = health.measure(net, tasks)
    assert len(h["rms"]) == len(h["dead"]) == 4
    assert all(r > 0 for r in h["rms"]) and all(0 <= d < 1 for d in h["dead"])
    assert (h["s_entropy"] == pytest.approx([1.0] * 4)) if ordering == "soft" else h["s_entropy"] is None
    with torch.no_grad():
        net.core.bank.bias.fill_(-1e3)  # every ReLU of every layer is zero on every row
    h = health.measure(net, tasks)
    assert h["dead"] == [1.0] * 4 and h["rms"] == [0.0] * 4


@pytest.mark.parametrize("ordering", ["parallel", "soft"])
def test_shared_input_probe(ordering: str) -> None:
    """CelebA's probe: one batch every task reads; parallel order computes one path for all."""
    from softorder.nn.network import shared_encoder_net

    torch.manual_seed(0)
    net = shared_encoder_net(torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU()), [2, 2], width=8,
                             ordering=ordering)
    x = torch.randn(40, 5)
    labels = torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]])
    probe = health.Probe.shared(x, labels)
    assert probe.rows == 32 and probe.xs.shape[0] == 32  # type: ignore[union-attr]
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert probe.chance == pytest.approx((-(p * p.log() + (1 - p) * (1 - p).log())).tolist())
    h = health.measure(net, probe)
    assert len(h["rms"]) == 4 and all(r > 0 for r in h["rms"]) and h["dead_tasks"] == [0] * 4
    with torch.no_grad():
        net.core.bank.bias.fill_(-1e3)
    assert health.measure(net, probe)["dead_tasks"] == [2] * 4


def test_verdict_and_one_warning(capsys: pytest.CaptureFixture[str]) -> None:
    net, tasks = _net("soft")
    with torch.no_grad():
        net.core.bank.bias.fill_(-1e3)
    monitor = health.Monitor(tasks, steps=100, name="runs/x")
    chance = health.chance_losses(tasks)
    for step in (10, 20):
        monitor.update(net, Evaluation(step, 0.0, chance, Scores(chance, [1.0] * len(chance)), None))
    err = capsys.readouterr().err
    assert err.count("softorder: warning: runs/x, step 10: every unit of the last depth is dead") == 1
    assert health.measure(net, tasks)["dead_tasks"] == [2, 2, 2, 2]
    assert monitor.result() == {"dead_last_depth": True, "at_chance": True, "unhealthy": True}
    early = health.verdict({"train_loss": [0.1, 0.2], "health": {"dead": [0.0, 0.5]}}, chance)
    assert early == {"dead_last_depth": False, "at_chance": False}
    assert "try depth_norm=rms, a lower lr" in err
    flags = {"dead_last_depth": True, "at_chance": False}
    said = health.warning(flags, 5, depth_norm="rms") or ""  # a core that reads unit-RMS rows already
    assert "(try a lower lr or init=he;" in said and "depth_norm" not in said


def test_runs_log_health_and_a_dead_run_is_marked(tmp_path: Path) -> None:
    alive = train(CFG.replace(lr=1e-2, steps=100, checkpoint_every=50), tmp_path / "alive", quiet=True)
    rec = RunDir(tmp_path / "alive").read_metrics()[-1]
    assert len(rec["health"]["dead"]) == 4 and len(rec["health"]["s_entropy"]) == 4
    assert alive["health"] == {"dead_last_depth": False, "at_chance": False, "unhealthy": False}
    tasks = make_synthetic(num_tasks=2, seed=0)
    for t in tasks:  # inputs that no encoder can separate: the loss stays at chance
        t.x_train.zero_()
    dead = train(CFG.replace(lr=1e-5), tmp_path / "dead", tasks=tasks, quiet=True)
    assert dead["health"]["at_chance"] and dead["health"]["unhealthy"]
    assert json.loads((tmp_path / "dead" / "result.json").read_text())["health"]["unhealthy"]
    results = {("soft", 0): dead, ("soft", 1): alive}
    s = summarise(CFG, ["soft"], 2, results, {})
    assert s["methods"]["soft"]["unhealthy_trials"] == [0]
    assert s["methods"]["soft"]["trials"] == [dead["mean_test_error"], alive["mean_test_error"]]  # kept
    md = results_markdown(s)
    assert "| trial 0 |" in md and "Unhealthy trials:" in md
