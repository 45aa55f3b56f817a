"""The fused network must equal the readable Eq. 7 reference: outputs and gradients (fp32, 1e-5)."""

from __future__ import annotations

import pytest
import torch

import softorder as so
from softorder.nn import MultiTaskNet, reference_forward

ORDERINGS = ["single", "parallel", "permuted", "soft", "gated", "routed"]  # routed: evaluation (argmax)


def _grads(net: MultiTaskNet, outputs: list[torch.Tensor], probes: list[torch.Tensor]) -> list:
    params = [p for p in net.parameters() if p.requires_grad]
    loss = sum((o * w).sum() for o, w in zip(outputs, probes))
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _check(net: MultiTaskNet, x, tasks=None) -> None:
    net.eval()
    # A non-uniform S (and gates) so the learned cases are not trivially symmetric.
    for name, p in net.core.named_parameters():
        if not name.startswith("bank."):
            torch.nn.init.normal_(p, std=1.0)
    fused, ref = net(x, tasks), reference_forward(net, x, tasks)
    assert len(fused) == len(ref)
    for a, b in zip(fused, ref):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    probes = [torch.randn_like(o) for o in fused]
    for ga, gb in zip(_grads(net, fused, probes), _grads(net, ref, probes)):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_dense_multi_input_different_sizes(ordering: str) -> None:
    torch.manual_seed(0)
    net = so.dense_net([5, 7, 3, 4], [2, 3, 4, 2], width=8, ordering=ordering, seed=1)
    _check(net, [torch.randn(6, n) for n in [5, 7, 3, 4]])


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_dense_multi_input_same_sizes_batched_path(ordering: str) -> None:
    torch.manual_seed(1)
    net = so.dense_net(6, [2, 2, 2], width=8, ordering=ordering, binary=True, encoder="frozen")
    _check(net, [torch.randn(5, 6) for _ in range(3)])


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_dense_uneven_batches_and_task_subset(ordering: str) -> None:
    torch.manual_seed(2)
    net = so.dense_net(6, [2, 3, 5, 4], width=8, ordering=ordering)
    _check(net, [torch.randn(5, 6), torch.randn(2, 6)], tasks=[3, 1])


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_dense_single_input(ordering: str) -> None:
    torch.manual_seed(3)
    net = so.dense_net(6, [2, 3, 4], width=8, ordering=ordering)
    _check(net, torch.randn(5, 6))


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_shared_encoder_single_input(ordering: str) -> None:
    torch.manual_seed(4)
    backbone = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU())
    net = so.shared_encoder_net(backbone, [2] * 5, width=8, ordering=ordering)
    _check(net, torch.randn(4, 10))
    _check(net, torch.randn(3, 10), tasks=[4, 0])


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("single_input", [False, True])
def test_conv(ordering: str, single_input: bool) -> None:
    torch.manual_seed(5)
    net = so.conv_net([3, 4, 2], image_shape=(1, 20, 20), channels=5, padding=1, ordering=ordering)
    x = torch.randn(3, 1, 20, 20)
    _check(net, x if single_input else [x, torch.randn(3, 1, 20, 20), torch.randn(3, 1, 20, 20)])


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_conv_uneven_batches(ordering: str) -> None:
    torch.manual_seed(6)
    net = so.conv_net([3, 4], image_shape=(1, 16, 16), channels=4, padding=1, ordering=ordering)
    _check(net, [torch.randn(3, 1, 16, 16), torch.randn(2, 1, 16, 16)])


def test_soft_with_more_depths_than_layers() -> None:
    torch.manual_seed(7)
    net = so.dense_net(6, [2, 3], width=8, num_layers=2, depth=5, ordering="soft")
    assert net.core.S.shape == (2, 5, 2)
    _check(net, [torch.randn(4, 6), torch.randn(4, 6)])


@pytest.mark.parametrize("single_input", [False, True])
def test_soft_l2_norm_matches_reference(single_input: bool) -> None:
    torch.manual_seed(8)
    net = so.dense_net(6, [2, 3, 4], width=8, ordering="soft", soft_norm="l2")
    x = torch.randn(4, 6)
    _check(net, x if single_input else [x, torch.randn(4, 6), torch.randn(4, 6)])
    torch.nn.init.zeros_(net.core.S)
    torch.testing.assert_close(net.mixing_weights(), torch.full((3, 4, 4), 0.5))  # 0.25 / ||.||


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_depth_norm_rms_equals_the_reference(ordering: str) -> None:
    """Every depth reads unit-RMS rows: the fused core equals the row-by-row reference, for inputs
    whose rows differ in scale by 10^4 (dense and conv, uneven batches)."""
    torch.manual_seed(6)
    net = so.dense_net([5, 7], [2, 3], width=8, ordering=ordering, depth_norm="rms")
    _check(net, [torch.randn(4, 5) * torch.logspace(-2, 2, 4)[:, None], torch.randn(3, 7)])
    conv = so.conv_net([3, 2], image_shape=(1, 20, 20), channels=5, padding=1, ordering=ordering,
                       depth_norm="rms")
    _check(conv, [torch.rand(3, 1, 20, 20) * 1e-3, torch.rand(3, 1, 20, 20)])
