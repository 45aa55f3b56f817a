"""Vectorised trials (train/trials.py): R runs as one stacked model must follow R separate runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from softorder.benchmarks import benchmark_config, build_net, load_tasks, train, train_trials
from softorder.experiments.compare import compare
from softorder.nn.banks import Dropout
from softorder.train.metrics import evaluate
from softorder.train.trials import StackedTrials, check_stackable


def _cfg(ordering: str, **kw: object):
    cfg, _ = benchmark_config(
        "synthetic", overrides=["steps=30", "eval_every=10", "checkpoint_every=30", "tasks=3"]
    )
    return cfg.replace(ordering=ordering, **kw)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted", "soft", "gated"])
def test_vectorised_trials_follow_sequential_runs(tmp_path: Path, ordering: str) -> None:
    cfgs = [_cfg(ordering, seed=s) for s in (3, 4)]
    results = train_trials(cfgs, [tmp_path / "v3", tmp_path / "v4"])
    for c, r in zip(cfgs, results):
        seq = train(c, tmp_path / f"s{c.seed}", quiet=True)
        vec_log, seq_log = _metrics(tmp_path / f"v{c.seed}"), _metrics(tmp_path / f"s{c.seed}")
        assert [x["step"] for x in vec_log] == [x["step"] for x in seq_log] == [10, 20, 30]
        for a, b in zip(vec_log, seq_log):
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
            if ordering == "soft":
                torch.testing.assert_close(torch.tensor(a["S"]), torch.tensor(b["S"]), rtol=0, atol=1e-5)
        assert r["best_step"] == seq["best_step"]
        assert r["test_loss"] == pytest.approx(seq["test_loss"], abs=1e-4)
        assert r["vectorised_trials"] == 2
        saved = json.loads((tmp_path / f"v{c.seed}" / "result.json").read_text())
        assert saved["test_error"] == r["test_error"]
        best = torch.load(tmp_path / f"v{c.seed}" / "best.pt", weights_only=True)
        ref = torch.load(tmp_path / f"s{c.seed}" / "best.pt", weights_only=True)
        assert best.keys() == ref.keys()
        if ordering == "permuted":  # each trial kept its own random orders
            assert torch.equal(best["core.order"], ref["core.order"])
    if ordering == "permuted":
        o3 = torch.load(tmp_path / "v3" / "best.pt", weights_only=True)["core.order"]
        o4 = torch.load(tmp_path / "v4" / "best.pt", weights_only=True)["core.order"]
        assert not torch.equal(o3, o4)


@pytest.mark.parametrize("core, ordering", [("resmlp", "soft"), ("resmlp", "permuted"),
                                            ("transformer", "soft")])
def test_vectorised_trials_of_a_module_bank_follow_sequential_runs(
    tmp_path: Path, core: str, ordering: str
) -> None:
    """A ModuleBank net under the trials' vmap: a vmap over trials around the bank's vmap over layers."""
    cfgs = [_cfg(ordering, seed=s, core=core, steps=20, eval_every=10, checkpoint_every=20) for s in (3, 4)]
    results = train_trials(cfgs, [tmp_path / "v3", tmp_path / "v4"])
    for c, r in zip(cfgs, results):
        seq = train(c, tmp_path / f"s{c.seed}", quiet=True)
        for a, b in zip(_metrics(tmp_path / f"v{c.seed}"), _metrics(tmp_path / f"s{c.seed}")):
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-4)
        assert r["test_loss"] == pytest.approx(seq["test_loss"], abs=1e-4)
        best = torch.load(tmp_path / f"v{c.seed}" / "best.pt", weights_only=True)
        assert any(k.startswith("core.bank.stacked.") for k in best)


def test_group_evaluation_matches_per_trial_evaluation(tmp_path: Path) -> None:
    cfgs = [_cfg("permuted", seed=s) for s in (0, 1, 2)]
    sets = [load_tasks(c) for c in cfgs]
    for ts in sets[1:]:  # uneven split sizes across trials exercise the padding
        ts[0].x_val, ts[0].y_val = ts[0].x_val[:-3], ts[0].y_val[:-3]
    group = StackedTrials(cfgs, sets, build_net)
    for step in range(5):
        group.train_step(step + 1)
    together = group.evaluate("val", chunk=16)
    for r, ts in enumerate(sets):
        loss, err = evaluate(group.net(r), ts, "val")
        assert together[r][0] == pytest.approx(loss, abs=1e-5)
        assert together[r][1] == pytest.approx(err, abs=1e-6)


def test_each_stacked_router_counts_its_own_steps_and_choices() -> None:
    """Routed trials draw their routes from another random stream than sequential runs (as their
    dropout masks), but each trial's router advances once per step on its own S."""
    cfgs = [_cfg("routed", seed=s, s_lr=0.1) for s in (0, 1)]
    group = StackedTrials(cfgs, [load_tasks(c) for c in cfgs], build_net)
    for step in range(6):
        group.train_step(step + 1)
    assert group.buffers["core.route_step"].tolist() == [6, 6]
    S = group.params["core.S"]
    assert torch.equal(group.buffers["core.choice"], S.argmax(-1))
    for r in range(2):  # the trial's net (evaluation, result.json) holds its own router state
        assert torch.equal(group.net(r).core.choice, S[r].argmax(-1))


def test_dropout_masks_differ_per_trial_under_vmap() -> None:
    drop = Dropout(0.5).train()
    keep = vmap(lambda x: drop(x), randomness="different")(torch.ones(4, 64, 64))
    rate = (keep > 0).float().mean((1, 2))
    assert torch.allclose(rate, torch.full((4,), 0.5), atol=0.05)
    assert not torch.equal(keep[0], keep[1])
    assert set(keep.unique().tolist()) == {0.0, 2.0}


def test_permuted_orders_on_device_follow_each_stacked_trial() -> None:
    cfgs = [_cfg("permuted", seed=s) for s in (0, 1)]
    tasks = load_tasks(cfgs[0])
    nets = [build_net(c, tasks) for c in cfgs]
    xs = [t.x_train[:8] for t in tasks]
    want = torch.stack([torch.stack(n(xs)) for n in nets])
    params, buffers = stack_module_state(nets)
    nets[0].core.use_orders_on_device()
    got = vmap(lambda p, b: torch.stack(functional_call(nets[0], (p, b), (xs,))))(params, buffers)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_stackable_configs_differ_in_seed_only() -> None:
    with pytest.raises(ValueError, match=r"differ only in seed.*'lr'"):
        check_stackable([_cfg("soft", seed=0), _cfg("soft", seed=1, lr=0.1)])
    with pytest.raises(ValueError, match="distinct seeds"):
        check_stackable([_cfg("soft", seed=1), _cfg("soft", seed=1)])
    with pytest.raises(ValueError, match="no trials"):
        check_stackable([])


def test_a_diverging_trial_names_its_seed_and_task_and_writes_nothing(tmp_path: Path) -> None:
    cfgs = [_cfg("soft", seed=s, lr=1e30) for s in (0, 1)]
    with pytest.raises(RuntimeError, match=r"task \d .* seed [01]"):
        train_trials(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_compare_vectorised_or_not_gives_the_same_kind_of_results(tmp_path: Path) -> None:
    cfg = _cfg("soft")
    a = compare(cfg, tmp_path / "vec", ["parallel", "permuted"], trials=2, workers=1, progress=False)
    b = compare(
        cfg, tmp_path / "seq", ["parallel", "permuted"], trials=2, workers=1, progress=False, vectorise=False
    )
    for o in ("parallel", "permuted"):  # no dropout: the same runs up to float rounding
        assert a["methods"][o]["trials"] == pytest.approx(b["methods"][o]["trials"], abs=0.02)
        run = json.loads((tmp_path / "vec" / "runs" / o / "trial1" / "result.json").read_text())
        assert run["vectorised_trials"] == 2
        assert "vectorised_trials" not in json.loads(
            (tmp_path / "seq" / "runs" / o / "trial1" / "result.json").read_text()
        )


def test_stackable_refuses_configs_of_two_benchmarks_by_name() -> None:
    from softorder.train.config import Config

    with pytest.raises(ValueError, match="differ only in seed"):
        check_stackable([Config(benchmark="uci"), Config(benchmark="mnist", seed=1)])
