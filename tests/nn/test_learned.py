"""The gated and routed orderings (nn/learned.py): fused = the readable reference (outputs and
gradients, in training too), on every bank and in the drop-in layer; what each starts as; the
router's temperature, its straight-through gradient, its record of when it settled; and that a
routed core in evaluation runs one layer per depth."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import softorder as so
from softorder.nn import (
    Anneal,
    DenseBank,
    GatedOrdering,
    ModuleBank,
    MultiTaskNet,
    RoutedOrdering,
    SoftOrder,
    make_ordering,
    pool_rows,
    reference_forward,
    reference_soft_order,
)
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock


def _randomise(net: nn.Module) -> None:
    """S and the gates away from zero, so that every term of the mixture matters."""
    for name, p in net.named_parameters():
        if name.split(".")[-1] in ("S", "gate_in", "gate_in_bias", "gate_out"):
            nn.init.normal_(p, std=1.0)


def _grads(outputs: list[Tensor], probes: list[Tensor], params: list[nn.Parameter]) -> list[Tensor]:
    loss = sum((o * w).sum() for o, w in zip(outputs, probes))
    grads = torch.autograd.grad(loss, params, allow_unused=True)  # type: ignore[arg-type]
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _same(net: MultiTaskNet, x: list[Tensor] | Tensor) -> None:
    """Fused = reference, outputs and gradients; a routed core in training mode with the routes
    its forward drew (the same generator state gives the reference the same Gumbel noise)."""
    torch.manual_seed(123)
    fused = net(x)
    routes = None
    if isinstance(net.core, RoutedOrdering) and net.training:
        torch.manual_seed(123)
        routes = net.core.sample()
    ref = reference_forward(net, x, routes=routes)
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    probes = [torch.randn_like(o) for o in fused]
    params = [p for p in net.parameters() if p.requires_grad]
    for name, ga, gb in zip([n for n, p in net.named_parameters() if p.requires_grad],
                            _grads(fused, probes, params), _grads(ref, probes, params)):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kind", ["gated", "gated-mlp", "gated-l2", "routed"])
@pytest.mark.parametrize("depth_norm", ["none", "rms"])
def test_dense_and_conv_equal_the_reference(kind: str, training: bool, depth_norm: str) -> None:
    ordering = kind.split("-")[0]
    extra = {"gate_hidden": 5} if kind == "gated-mlp" else {"soft_norm": "l2"} if kind == "gated-l2" else {}
    torch.manual_seed(0)
    dense = so.dense_net([5, 7, 3], [2, 3, 4], width=8, depth=6, ordering=ordering, depth_norm=depth_norm,
                         **extra)
    conv = so.conv_net([3, 2], image_shape=(1, 16, 16), channels=5, padding=1, ordering=ordering,
                       depth_norm=depth_norm, **extra)
    for net, x in ((dense, [torch.randn(4, 5), torch.randn(2, 7), torch.randn(4, 3)]),
                   (conv, [torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)])):
        _randomise(net)
        net.train(training)
        _same(net, x)


BLOCKS = {  # a ModuleBank kind: (a block, gate_features, encoder, input of 3 tasks)
    "resmlp": (lambda: ResidualMLP(6, hidden=10), 6, lambda: so.nn.DenseEncoders([5, 5, 5], 6),
               lambda: [torch.randn(3, 5) for _ in range(3)]),
    "resconv": (lambda: ResidualConv(4, pool=2), 4, lambda: so.nn.SharedEncoder(nn.Conv2d(1, 4, 1)),
                lambda: torch.randn(3, 1, 8, 8)),
    "transformer": (lambda: TransformerBlock(8, heads=2, ffn=12), 8,
                    lambda: so.nn.SharedEncoder(nn.Linear(3, 8)), lambda: torch.randn(3, 5, 3)),
}


@pytest.mark.parametrize("ordering", ["gated", "routed"])
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_module_bank_blocks_equal_the_reference(kind: str, ordering: str) -> None:
    make, features, encoder, inputs = BLOCKS[kind]
    torch.manual_seed(1)
    core = make_ordering(ordering, lambda n: ModuleBank([make() for _ in range(n)]), 3, 2, depth=3,
                         gate_features=features)
    out_shape = {"resmlp": (6,), "resconv": (4, 1, 1), "transformer": (5, 8)}[kind]
    net = MultiTaskNet(encoder(), core, so.nn.Decoders(int(torch.tensor(out_shape).prod()), [2, 3, 2]))
    _randomise(net)
    for training in (False, True):
        net.train(training)
        if kind != "transformer" or not training:  # (dropout inside the transformer block)
            _same(net, inputs())


def test_a_gate_with_more_tasks_than_features_equals_the_reference() -> None:
    """Fewer pooled features than tasks: the gate gathers each row's matrices (the other branch)."""
    torch.manual_seed(10)
    net = so.dense_net([3, 3, 3, 3], [2, 2, 3, 2], width=2, ordering="gated", gate_hidden=3)
    _randomise(net)
    _same(net, [torch.randn(3, 3) for _ in range(4)])


def test_a_module_bank_gate_needs_its_width() -> None:
    with pytest.raises(ValueError, match="gated ordering over a ModuleBank needs gate_features"):
        GatedOrdering(ModuleBank([ResidualMLP(6) for _ in range(2)]), 2)
    with pytest.raises(ValueError, match="pass gate_features=9"):
        pool_rows(torch.randn(2, 9), 6)


@pytest.mark.parametrize("ordering", ["gated", "routed"])
def test_drop_in_layer_equals_its_reference(ordering: str) -> None:
    torch.manual_seed(2)
    layer = SoftOrder([ResidualMLP(6, hidden=8) for _ in range(3)], num_tasks=4, depth=4,
                      ordering=ordering, gate_features=6, gate_hidden=3)
    _randomise(layer)
    x, task = torch.randn(7, 6), torch.tensor([3, 0, 0, 2, 1, 3, 2])
    for training in (False, True):
        layer.train(training)
        torch.manual_seed(5)
        fused = layer(x, task)
        torch.manual_seed(5)
        routes = layer.core.sample() if ordering == "routed" and training else None
        assert isinstance(layer.core, GatedOrdering | RoutedOrdering)
        want = reference_soft_order(layer, x, task, routes=routes)
        torch.testing.assert_close(fused, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="routed ordering takes no temperature or norm"):
        SoftOrder([ResidualMLP(6) for _ in range(2)], 2, ordering="routed", norm="l2")
    with pytest.raises(ValueError, match="ordering must be one of soft, gated, routed"):
        SoftOrder([ResidualMLP(6) for _ in range(2)], 2, ordering="parallel")


def test_gated_starts_as_soft_ordering_and_its_gate_learns() -> None:
    torch.manual_seed(3)
    gated = so.dense_net([5, 5], [2, 3], width=8, ordering="gated", gate_hidden=4, seed=0)
    soft = so.dense_net([5, 5], [2, 3], width=8, ordering="soft", seed=0)
    state = {k: v for k, v in gated.state_dict().items() if "gate" not in k}
    soft.load_state_dict(state)
    x = [torch.randn(4, 5), torch.randn(4, 5)]
    for a, b in zip(gated(x), soft(x)):
        torch.testing.assert_close(a, b)  # the gate's output layer starts at zero
    loss = sum(z.sum() for z in gated(x))
    loss.backward()  # type: ignore[union-attr]
    assert isinstance(gated.core, GatedOrdering)
    assert gated.core.gate_out.grad is not None and gated.core.gate_out.grad.abs().sum() > 0


def test_a_bf16_gated_net_runs_and_the_gates_are_a_parameter_group() -> None:
    torch.manual_seed(9)
    net = so.dense_net([5, 5], [2, 3], width=8, ordering="gated", gate_hidden=4)
    groups = [*net.shared_parameters(), *net.ordering_parameters(), *net.gate_parameters(),
              *(p for t in range(2) for p in net.task_parameters(t))]
    assert sorted(map(id, groups)) == sorted(id(p) for p in net.parameters() if p.requires_grad)
    assert {id(p) for p in net.gate_parameters()} == {id(net.core.gate_in), id(net.core.gate_in_bias),
                                                      id(net.core.gate_out)}
    out = net.to(torch.bfloat16)([torch.randn(3, 5, dtype=torch.bfloat16) for _ in range(2)])
    assert out[0].dtype == torch.bfloat16


def test_gate_weights_differ_across_inputs_and_the_spread_is_recorded() -> None:
    torch.manual_seed(4)
    core = GatedOrdering(DenseBank(6, 3), 2, depth=2)
    _randomise(core)
    y = torch.randn(10, 6)
    ids = torch.tensor([0] * 5 + [1] * 5)
    w = core.depth_weights(0, y, ids)
    assert w.shape == (10, 3) and torch.allclose(w.sum(1), torch.ones(10))
    assert float(w[:5].detach().std(0).max()) > 1e-3  # one task, five inputs, five mixtures
    with torch.no_grad(), core.recording_summary() as seen:
        core.forward_ids(y, ids)
    assert seen["gate_rows"] == [5, 5]
    std = torch.tensor(seen["gate_weights_std"])
    w = w.detach()
    want = torch.stack([w[:5].std(0, unbiased=False), w[5:].std(0, unbiased=False)])
    torch.testing.assert_close(std[:, 0], want, atol=1e-5, rtol=1e-4)


def test_router_anneals_samples_one_hot_and_passes_gradients_straight_through() -> None:
    torch.manual_seed(5)
    core = RoutedOrdering(DenseBank(4, 3), 2, anneal=Anneal(2.0, 0.5, 10))
    assert float(core.temperature_now()) == pytest.approx(2.0)
    core.route_step.fill_(5)
    assert float(core.temperature_now()) == pytest.approx(1.0)  # geometric: 2 * (0.25)^(1/2)
    core.route_step.fill_(50)
    assert float(core.temperature_now()) == pytest.approx(0.5)
    r = core.sample()
    one_hot = torch.nn.functional.one_hot(r.detach().argmax(-1), 3).float()
    torch.testing.assert_close(r.detach(), one_hot)  # one-hot in value (up to rounding)
    (r * torch.randn_like(r)).sum().backward()
    assert core.S.grad is not None and core.S.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="routing temperature"):
        Anneal(0.0, 0.1, 10)


def test_router_counts_steps_and_records_when_each_task_settled() -> None:
    torch.manual_seed(6)
    core = RoutedOrdering(DenseBank(4, 3), 2).train()
    rows = so.nn.Rows.of((0, 1), (2, 2))
    y = torch.randn(4, 4)
    core(y, rows)
    assert int(core.route_step) == 0  # the forward changes no state
    core.advance()  # step 1: the choices are argmax of S = 0 (layer 0 everywhere): unchanged
    assert int(core.route_step) == 1 and core.settled_step.tolist() == [0, 0]
    with torch.no_grad():
        core.S[1, 2, 1] = 5.0  # after step 2's update task 1 changes its mind at depth 2
    core.advance()
    core.advance()
    assert int(core.route_step) == 3 and core.settled_step.tolist() == [0, 2]
    assert core.summary() == {"route_choice": [[0, 0, 0], [0, 0, 1]], "route_settled_step": [0, 2]}
    state = core.state_dict()
    assert {"route_step", "choice", "settled_step", "anneal_steps"} <= set(state)  # a resumed run continues
    long = torch.long
    stacked = {"S": torch.zeros(3, 2, 3, 3), "route_step": torch.zeros(3, dtype=long),
               "choice": torch.zeros(3, 2, 3, dtype=long), "settled_step": torch.zeros(3, 2, dtype=long)}
    stacked["S"][1, 0, 0, 2] = 1.0  # trial 1, task 0 changes
    core.advance_state(stacked)  # the vectorised trials: leading trial dimension
    assert stacked["route_step"].tolist() == [1, 1, 1]
    assert stacked["settled_step"].tolist() == [[0, 0], [1, 0], [0, 0]]


def test_a_routed_forward_can_be_recomputed() -> None:
    """No state changes in the forward: activation checkpointing (which reruns it with the same
    random state) gives the gradients of the plain forward, and the temperature of step 1 is
    ``route_tau_start``."""
    torch.manual_seed(8)
    layer = SoftOrder([ResidualMLP(6, hidden=8) for _ in range(3)], num_tasks=2, ordering="routed",
                      anneal=Anneal(2.0, 0.1, 10))
    assert float(layer.core.temperature_now()) == pytest.approx(2.0)
    x, task = torch.randn(5, 6), torch.tensor([0, 1, 0, 1, 1])
    torch.manual_seed(1)
    layer(x, task).square().sum().backward()
    plain = layer.S.grad.clone()  # type: ignore[union-attr]
    layer.zero_grad()
    torch.manual_seed(1)
    torch.utils.checkpoint.checkpoint(layer, x, task, use_reentrant=False).square().sum().backward()
    torch.testing.assert_close(layer.S.grad, plain)
    assert int(layer.core.route_step) == 0
    layer.advance()
    assert int(layer.core.route_step) == 1


def test_routed_evaluation_runs_only_the_chosen_layer() -> None:
    torch.manual_seed(7)
    bank = DenseBank(4, 3)
    core = RoutedOrdering(bank, 2).eval()
    _randomise(core)
    calls: list[str] = []
    bank.forward = lambda y: calls.append("all") or DenseBank.forward(bank, y)  # type: ignore[method-assign]
    out = core(torch.randn(6, 4), so.nn.Rows.of((0, 1), (3, 3)))
    assert out.shape == (6, 4) and calls == []  # never every layer: one block op per depth

