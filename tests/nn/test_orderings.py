"""Properties of the orderings and the multitask net (Sec. 3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

import softorder as so
from softorder.nn import (
    ConvBank,
    DenseBank,
    Ordering,
    PermutedOrdering,
    SoftOrdering,
    make_ordering,
    soft_order_step,
)
from softorder.nn.orderings import HardOrdering


def test_soft_weights_uniform_at_init_and_rows_sum_to_one() -> None:
    net = so.dense_net(4, [2, 2, 3], width=8, ordering="soft")
    s = net.mixing_weights()
    assert s is not None and s.shape == (3, 4, 4)
    torch.testing.assert_close(s, torch.full_like(s, 0.25))
    nn.init.normal_(net.core.S, std=3.0)
    torch.testing.assert_close(net.mixing_weights().sum(-1), torch.ones(3, 4))


def test_soft_order_step_is_weighted_sum() -> None:
    outputs, w = torch.randn(3, 4, 5), torch.softmax(torch.randn(3, 4), -1)
    expected = sum(w[:, j, None] * outputs[:, j] for j in range(4))
    torch.testing.assert_close(soft_order_step(outputs, w), expected)


def test_permuted_equals_soft_with_one_hot_s() -> None:
    torch.manual_seed(0)
    perm = so.dense_net(5, [2, 3, 2], width=8, ordering="permuted", seed=3).eval()
    soft = so.dense_net(5, [2, 3, 2], width=8, ordering="soft").eval()
    soft.load_state_dict({k: v for k, v in perm.state_dict().items() if "order" not in k}, strict=False)
    with torch.no_grad():
        soft.core.S.copy_(torch.nn.functional.one_hot(perm.core.order, 4).float() * 1e4)
    x = [torch.randn(6, 5) for _ in range(3)]
    for a, b in zip(perm(x), soft(x)):
        torch.testing.assert_close(a, b)


def test_permuted_orders_are_permutations_seeded_and_kept_in_state_dict() -> None:
    a = PermutedOrdering(DenseBank(4, 4), num_tasks=6, seed=1)
    b = PermutedOrdering(DenseBank(4, 4), num_tasks=6, seed=1)
    c = PermutedOrdering(DenseBank(4, 4), num_tasks=6, seed=2)
    assert torch.equal(a.order, b.order) and not torch.equal(a.order, c.order)
    assert all(sorted(row) == [0, 1, 2, 3] for row in a.order.tolist())
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.order, a.order)
    assert [c.layer_at(t, k) for t in range(6) for k in range(4)] == a.order.flatten().tolist()


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted", "soft"])
def test_state_dict_round_trip(ordering: str) -> None:
    torch.manual_seed(0)
    a = so.dense_net([3, 4], [2, 3], width=8, ordering=ordering, seed=5).eval()
    for p in a.ordering_parameters():
        nn.init.normal_(p)
    b = so.dense_net([3, 4], [2, 3], width=8, ordering=ordering, seed=99).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = [torch.randn(4, 3), torch.randn(4, 4)]
    for u, v in zip(a(x), b(x)):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_parallel_with_one_task_is_a_plain_sequential_net() -> None:
    torch.manual_seed(0)
    net = so.dense_net(5, [3], width=8, num_layers=3, ordering="parallel").eval()
    bank = net.core.bank
    seq = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
    with torch.no_grad():
        seq[0].weight.copy_(net.encoders.layers[0].weight)
        seq[0].bias.copy_(net.encoders.layers[0].bias)
        for j in range(3):
            lin = nn.Linear(8, 8)
            lin.weight.copy_(bank.weight[j])
            lin.bias.copy_(bank.bias[j])
            seq.extend([lin, nn.ReLU()])
        out = nn.Linear(8, 3)
        out.weight.copy_(net.decoders.layers[0].weight)
        out.bias.copy_(net.decoders.layers[0].bias)
        seq.append(out)
    x = torch.randn(7, 5)
    torch.testing.assert_close(net([x])[0], seq(x))


def test_parameter_groups_partition_trainable_parameters() -> None:
    net = so.dense_net([3, 4, 5], [2, 3, 4], width=8, ordering="soft")
    shared = {id(p) for p in net.shared_parameters()}
    ordering = {id(p) for p in net.ordering_parameters()}
    tasks = [{id(p) for p in net.task_parameters(t)} for t in range(3)]
    groups = [shared, ordering, *tasks]
    assert ordering == {id(net.core.S)}
    assert sum(len(g) for g in groups) == len(set().union(*groups))  # disjoint
    assert set().union(*groups) == {id(p) for p in net.parameters() if p.requires_grad}
    frozen = so.dense_net(4, [2, 2], width=8, ordering="parallel", encoder="frozen")
    assert list(frozen.ordering_parameters()) == []
    assert all(p.requires_grad for p in frozen.task_parameters(0))
    assert len(list(frozen.task_parameters(0))) == 2  # decoder only: the encoder is frozen


def test_single_ordering_has_private_layers() -> None:
    net = so.dense_net(4, [2, 2, 2], width=8, num_layers=4, ordering="single")
    assert net.core.bank.num_layers == 12 and net.core.num_layers == 4
    assert net.core.order.tolist()[2] == [8, 9, 10, 11]


def test_binary_and_multiclass_losses_and_predictions() -> None:
    net = so.dense_net(4, [2, 5], width=8, binary=[True, False], ordering="soft")
    x = [torch.randn(6, 4), torch.randn(6, 4)]
    logits = net(x)
    assert logits[0].shape == (6,) and logits[1].shape == (6, 5)
    y = [torch.randint(0, 2, (6,)), torch.randint(0, 5, (6,))]
    losses = net.losses(logits, y)
    assert losses.shape == (2,) and bool(torch.isfinite(losses).all())
    preds = net.predict(logits)
    assert set(preds[0].tolist()) <= {0, 1} and preds[1].max() < 5


def test_he_init_and_dropout_train_mode_differs() -> None:
    bank = DenseBank(64, 4, dropout=0.5, init="he")
    assert torch.all(bank.bias == 0)
    std = bank.weight.std().item()
    assert abs(std - (2 / 64) ** 0.5) < 0.02
    x = torch.randn(16, 64)
    bank.train()
    assert not torch.equal(bank(x), bank(x))
    bank.eval()
    assert torch.equal(bank(x), bank(x))


@pytest.mark.parametrize("binary", [False, True])
def test_batched_losses_equal_per_task_losses(binary: bool) -> None:
    torch.manual_seed(0)
    net = so.dense_net(4, [2, 2, 2], width=8, binary=binary)
    x = [torch.randn(5, 4) for _ in range(3)]
    y = [torch.randint(0, 2, (5,)) for _ in range(3)]
    logits = net(x)
    per_task = torch.stack([net.decoders.loss(t, z, yt) for t, z, yt in zip(range(3), logits, y)])
    torch.testing.assert_close(net.losses(logits, y), per_task)


def test_ordering_is_abstract_and_a_subclass_must_define_forward() -> None:
    assert Ordering.__abstractmethods__ == frozenset({"forward"})
    with pytest.raises(TypeError, match="abstract"):
        Ordering(DenseBank(4, 2), 2, 2)  # type: ignore[abstract]

    class NoForward(Ordering):
        name = "none"

    with pytest.raises(TypeError, match="forward"):
        NoForward(DenseBank(4, 2), 2, 2)


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted"])
def test_orders_on_device_is_a_constructor_option(ordering: str) -> None:
    torch.manual_seed(0)
    host = so.dense_net(5, [2, 3, 2], width=8, ordering=ordering, seed=3).eval()
    torch.manual_seed(0)
    dev = so.dense_net(5, [2, 3, 2], width=8, ordering=ordering, seed=3, orders_on_device=True).eval()
    assert isinstance(dev.core, HardOrdering) and dev.core.orders_on_device
    assert not host.core.orders_on_device
    with pytest.raises(AttributeError):
        host.core.orders_on_device = True  # type: ignore[misc]
    x = [torch.randn(4, 5) for _ in range(3)]
    for a, b in zip(host(x), dev(x)):  # one batched op per depth: the same up to float rounding
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    host.core.use_orders_on_device()
    assert host.core.orders_on_device


def test_orders_on_device_built_nets_follow_each_stacked_trial() -> None:
    nets = [
        so.dense_net(5, [2, 2], width=8, ordering="permuted", seed=s, orders_on_device=True) for s in (0, 1)
    ]
    x = [torch.randn(4, 5), torch.randn(4, 5)]
    want = torch.stack([torch.stack(n(x)) for n in nets])
    params, buffers = stack_module_state(nets)  # type: ignore[arg-type]
    got = vmap(lambda p, b: torch.stack(functional_call(nets[0], (p, b), (x,))))(params, buffers)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_make_ordering_threads_the_options() -> None:
    def bank(n: int) -> ConvBank:
        return ConvBank(3, n, padding=1)

    soft = make_ordering("soft", bank, 2, 2, channels_last=True, orders_on_device=True)
    assert isinstance(soft, SoftOrdering) and soft.channels_last  # soft has no orders to move
    perm = make_ordering("permuted", bank, 2, 2, seed=1, orders_on_device=True)
    assert isinstance(perm, HardOrdering) and perm.orders_on_device and not perm.channels_last
    with pytest.raises(ValueError, match="channels_last applies to image banks"):
        make_ordering("parallel", lambda n: DenseBank(4, n), 2, 2, channels_last=True)
    dense = make_ordering("parallel", lambda n: DenseBank(4, n), 2, 2)
    assert not dense.use_channels_last() and not dense.channels_last and not dense._forward_pre_hooks


def test_soft_ordering_in_row_blocks_equals_all_rows_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU many flat rows are mixed in blocks (cache); the result must not change."""
    import softorder as so
    from softorder.nn import orderings

    torch.manual_seed(0)
    net = so.dense_net(6, [3, 3, 3], width=8, num_layers=3, ordering="soft", dropout=0.0)
    with torch.no_grad():
        net.core.S.normal_()
    xs = [torch.randn(40, 6) for _ in range(3)]

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        out = torch.cat(net(xs))
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters()]

    whole, grads = run()
    monkeypatch.setattr(orderings, "MIN_BLOCK_ROWS", 16)
    monkeypatch.setattr(orderings, "ROW_BLOCK_ELEMENTS", 16 * 3 * 8)
    assert net.core._row_chunk(torch.zeros(120, 8)) == 16
    blocked, blocked_grads = run()
    torch.testing.assert_close(blocked, whole, rtol=1e-6, atol=1e-6)
    for a, b in zip(blocked_grads, grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_rms_normalise_gives_each_row_unit_rms_and_keeps_zero_rows() -> None:
    from softorder.nn import rms_normalise

    y = torch.randn(4, 3, 5, 5) * torch.tensor([1e-5, 1e-2, 1.0, 1e3])[:, None, None, None]
    y[1] = 0.0
    out = rms_normalise(y)
    rms = out.pow(2).mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(rms[[2, 3]], torch.ones(2), rtol=1e-4, atol=0)
    assert rms[0].item() == pytest.approx(1, rel=1e-2)  # RMS 1e-5: RMS_EPS is 1% of its mean square
    assert out[1].abs().max() == 0 and out.isfinite().all()
    bf = rms_normalise(y.bfloat16())
    assert bf.dtype == torch.bfloat16
    assert bf.float().pow(2).mean(dim=(1, 2, 3))[3].sqrt().item() == pytest.approx(1, rel=1e-2)


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted", "soft"])
def test_depth_norm_rms_makes_the_core_blind_to_its_input_scale(ordering: str) -> None:
    """With ``depth_norm="rms"`` a net's output does not depend on the scale of its input rows (each
    depth reads unit-RMS rows), while with ``none`` it does."""
    import softorder as so

    torch.manual_seed(0)
    x = torch.rand(3, 1, 16, 16)
    for norm, same in [("rms", True), ("none", False)]:
        net = so.conv_net([2, 2], image_shape=(1, 16, 16), channels=4, padding=1, ordering=ordering,
                          depth_norm=norm, init="he").eval()
        a, b = net([x, x]), net([x * 1e-3, x * 1e-3])
        assert torch.allclose(a[0], b[0], atol=1e-5) == same, norm
    with pytest.raises(ValueError, match="unknown depth_norm 'layer'; choose one of none, rms"):
        so.dense_net(4, [2], ordering=ordering, depth_norm="layer")


@pytest.mark.parametrize("ordering", ["permuted", "soft"])
def test_a_net_used_under_inference_mode_still_trains(ordering: str) -> None:
    """The row and layer indices cached for a batch layout are made for later steps with autograd,
    even when the first step of that layout ran under ``torch.inference_mode()``."""
    import softorder as so

    net = so.dense_net([3, 3], [2, 2], width=8, num_layers=2, ordering=ordering)
    xs = [torch.randn(4, 3), torch.randn(4, 3)]
    with torch.inference_mode():
        net(xs)
    sum(o.sum() for o in net(xs)).backward()
    assert all(p.grad is not None for p in net.core.parameters())


def test_a_compiled_forward_is_one_graph() -> None:
    """The row index is a constant of the compiled graph (made from host values), not a
    data-dependent ``repeat_interleave`` that splits the forward into several graphs."""
    import torch._dynamo as dynamo

    import softorder as so

    net = so.dense_net([5, 7], [3, 2], width=16, num_layers=3, ordering="soft")
    explained = dynamo.explain(net)([torch.randn(4, 5), torch.randn(4, 7)])
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)


def test_every_ordering_name_has_its_class() -> None:
    from softorder.nn.make import ordering_class
    from softorder.nn.orderings import ORDERINGS

    for name in ORDERINGS:
        assert ordering_class(name).name == name
    with pytest.raises(ValueError, match="unknown ordering 'sideways'"):
        ordering_class("sideways")
