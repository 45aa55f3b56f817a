"""Speed options: channels-last conv core, torch.compile wiring, --precision/--compile flags."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import softorder as so
from softorder.benchmarks import train
from softorder.cli import main
from softorder.train.accel import use_channels_last
from softorder.train.config import Config
from softorder.train.config_files import load_config

CFG = Config(benchmark="synthetic", tasks=2, width=8, steps=4, eval_every=2, checkpoint_every=2, dropout=0.0)


@pytest.mark.parametrize("ordering", ["soft", "parallel", "permuted"])
def test_channels_last_conv_core_matches_nchw(ordering: str) -> None:
    torch.manual_seed(0)
    net = so.conv_net([3, 4], image_shape=(1, 12, 12), channels=6, num_layers=2, padding=1, ordering=ordering)
    nhwc = copy.deepcopy(net)
    assert use_channels_last(nhwc) and use_channels_last(nhwc)  # idempotent
    xs = [torch.randn(3, 1, 12, 12), torch.randn(3, 1, 12, 12)]
    ys = [torch.tensor([0, 1, 2]), torch.tensor([3, 0, 1])]
    for m in (net, nhwc):
        m.losses(m(xs), ys).sum().backward()
    for a, b in zip(net(xs), nhwc(xs)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for p, q in zip(net.parameters(), nhwc.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def test_channels_last_is_a_build_option() -> None:
    torch.manual_seed(0)
    shape = {"image_shape": (1, 12, 12), "channels": 6, "num_layers": 2, "padding": 1}
    built = so.conv_net([3, 4], **shape, channels_last=True)  # type: ignore[arg-type]
    torch.manual_seed(0)
    later = so.conv_net([3, 4], **shape)  # type: ignore[arg-type]
    assert built.core.channels_last and not later.core.channels_last
    assert use_channels_last(later) and later.core.channels_last
    assert len(built.core._forward_pre_hooks) == len(later.core._forward_pre_hooks) == 1
    assert use_channels_last(built) and len(built.core._forward_pre_hooks) == 1  # idempotent
    xs = [torch.randn(3, 1, 12, 12), torch.randn(3, 1, 12, 12)]
    for a, b in zip(built(xs), later(xs)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_channels_last_leaves_dense_nets_alone() -> None:
    net = so.dense_net(5, [2, 2], width=8)
    assert not use_channels_last(net)
    assert not net.core._forward_pre_hooks


def test_compile_wraps_the_training_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wiring only: the 'eager' backend traces the model with dynamo but skips code generation (a
    real inductor compile takes about a minute on a small CPU)."""
    real = torch.compile
    calls: list[object] = []

    def eager_compile(model: torch.nn.Module, **kw: object) -> torch.nn.Module:
        calls.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    compiled = train(CFG.replace(compile=True), tmp_path / "c", quiet=True)
    plain = train(CFG, tmp_path / "p", quiet=True)
    assert len(calls) == 1 and isinstance(calls[0], so.MultiTaskNet)
    assert compiled["test_loss"] == pytest.approx(plain["test_loss"], abs=1e-6)


def test_precision_and_compile_flags_reach_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Config] = []
    monkeypatch.setattr("softorder.benchmarks.train", lambda cfg, out, **kw: seen.append(cfg) or _result())
    cfg = tmp_path / "c.yaml"
    cfg.write_text("benchmark: synthetic\ntasks: 2\nsteps: 2\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "r"), "--precision", "bf16", "--compile"]) == 0
    assert seen[-1].run.precision == "bf16" and seen[-1].run.compile
    assert main(["train", str(cfg), "--out", str(tmp_path / "s")]) == 0
    assert seen[-1].run.precision == "fp32" and not seen[-1].run.compile


def test_bf16_run_on_cpu(tmp_path: Path) -> None:
    r = train(CFG.replace(precision="bf16", channels_last=True), tmp_path / "b", quiet=True)
    assert r["steps"] == 4
    assert load_config(tmp_path / "b" / "config.yaml").run.precision == "bf16"


def _result() -> dict[str, object]:
    return {"mean_test_error": 0.0, "mean_test_loss": 0.0, "best_step": 1, "steps": 2}
