"""The config keys of the gated and routed orderings reach the core a benchmark builds."""

from __future__ import annotations

from softorder.benchmarks import benchmark_config, build_net, load_tasks
from softorder.nn import Anneal, GatedOrdering, RoutedOrdering


def test_config_keys_reach_the_core() -> None:
    cfg, _ = benchmark_config(
        "synthetic", overrides=["ordering=routed", "steps=40", "route_tau_start=3", "route_anneal=0.25"])
    net = build_net(cfg, load_tasks(cfg))
    assert isinstance(net.core, RoutedOrdering) and net.core.anneal == Anneal(3.0, 0.1, 10)
    cfg, _ = benchmark_config("synthetic", overrides=["ordering=gated", "gate_hidden=7"])
    net = build_net(cfg, load_tasks(cfg))
    assert isinstance(net.core, GatedOrdering) and net.core.gate_in.shape[-1] == 7
