"""The ``core`` config key (benchmarks/base.py ``core_bank``): modern blocks as a benchmark's core,
refused where they do not fit its data; the default core builds exactly the net it always did."""

from __future__ import annotations

import pytest
import torch

from softorder.benchmarks import benchmark_config, build_net, check, load_tasks
from softorder.benchmarks.base import core_bank
from softorder.data.tasks import TaskData
from softorder.nn import ConvBank, DenseBank, ModuleBank, dense_net, reference_forward
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock
from softorder.train.config import Config


def _synthetic(**kw: object) -> Config:
    cfg, _ = benchmark_config("synthetic", overrides=["tasks=3"])
    return cfg.replace(**kw)


def _images(n: int = 2, size: int = 12) -> list[TaskData]:
    def task(t: int) -> TaskData:
        x, y = torch.rand(4, 1, size, size), torch.arange(4) % (t + 2)
        return TaskData(f"alphabet{t}", t + 2, x, y, x, y, x, y)

    return [task(t) for t in range(n)]


def test_the_default_cores_build_the_nets_they_always_did() -> None:
    cfg = _synthetic()
    assert cfg.model.core == "dense" and core_bank(cfg, 32) is None
    tasks = load_tasks(cfg)
    torch.manual_seed(0)
    net = build_net(cfg, tasks)
    torch.manual_seed(0)
    m = cfg.model
    old = dense_net([t.in_features for t in tasks], [t.num_classes for t in tasks], width=m.width,
                    num_layers=m.num_layers, ordering=m.ordering, dropout=m.dropout, init=m.init,  # type: ignore[arg-type]
                    encoder=m.encoder, binary=[t.binary for t in tasks], seed=cfg.seed)
    assert isinstance(net.core.bank, DenseBank)
    assert net.state_dict().keys() == old.state_dict().keys()
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in net.state_dict().items())
    omniglot = Config(benchmark="omniglot", channels=4, padding=1, tasks=2)
    assert omniglot.model.core == "conv"
    assert isinstance(build_net(omniglot, _images(size=16)).core.bank, ConvBank)
    assert Config.from_dict({k: v for k, v in cfg.to_dict().items() if k != "core"}) == cfg  # old runs


@pytest.mark.parametrize("core, block", [("resmlp", ResidualMLP), ("transformer", TransformerBlock)])
def test_dense_benchmarks_take_residual_mlp_and_transformer_cores(core: str, block: type) -> None:
    cfg = _synthetic(core=core, dropout=0.0, tokens=4, heads=2)
    tasks = load_tasks(cfg)
    net = build_net(cfg, tasks).eval()
    bank = net.core.bank
    assert isinstance(bank, ModuleBank) and bank.num_layers == cfg.model.num_layers
    assert any(isinstance(m, block) for m in bank.module(0).modules())
    xs = [t.x_train[:5] for t in tasks]
    for a, b in zip(net(xs), reference_forward(net, xs)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    single = build_net(cfg.replace(ordering="single"), tasks)
    assert single.core.bank.num_layers == 3 * cfg.model.num_layers


def test_omniglot_takes_the_residual_conv_core() -> None:
    cfg = Config(benchmark="omniglot", core="resconv", channels=4, tasks=2, num_layers=3, dropout=0.0,
                 init="he")
    net = build_net(cfg, _images(size=12)).eval()
    bank = net.core.bank
    assert isinstance(bank, ModuleBank) and isinstance(bank.module(0), ResidualConv)
    assert bank.output_shape((4, 12, 12), 3) == (4, 1, 1)  # 12 -> 6 -> 3 -> 1
    assert float(bank.stacked.conv1.bias.detach().abs().sum()) == 0.0  # init: he
    xs = [t.x_train for t in _images(size=12)]
    for a, b in zip(net(xs), reference_forward(net, xs)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "benchmark, core, message",
    [
        ("uci", "resconv", r"core resconv does not fit uci \(its tasks' rows are feature vectors\): "
                           r"choose core dense \| resmlp \| transformer"),
        ("mnist", "conv", r"core conv does not fit mnist"),
        ("omniglot", "transformer", r"core transformer does not fit omniglot \(its tasks are images\): "
                                    r"choose core conv \| resconv"),
        ("omniglot", "dense", r"core dense does not fit omniglot"),
        ("celeba", "resconv", r"core resconv does not fit celeba \(the trunk gives each image one feature"),
    ],
)
def test_a_core_that_does_not_fit_the_data_is_refused(benchmark: str, core: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        benchmark_config(benchmark, overrides=[f"core={core}"])
    with pytest.raises(ValueError, match=message):
        check(Config(benchmark=benchmark, core=core))


def test_core_choices_and_the_transformer_view_are_checked() -> None:
    with pytest.raises(ValueError, match=r"core must be one of dense, conv, resmlp, resconv, transformer"):
        Config(benchmark="uci", core="lstm")
    with pytest.raises(ValueError, match=r"tokens must divide width and heads must divide width / tokens"):
        Config(benchmark="uci", core="transformer", width=32, tokens=3)
    with pytest.raises(ValueError, match=r"views rows of width 32 as 4 tokens split over 3 heads"):
        Config(benchmark="uci", core="transformer", width=32, heads=3)
    assert Config(benchmark="uci", core="transformer", width=32, tokens=4, heads=8).model.heads == 8
