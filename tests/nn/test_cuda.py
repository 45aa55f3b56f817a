"""On a CUDA GPU, every block of every ordering trains in fp32, bf16 and fp16 autocast (issue 22).

Marked ``cuda``: skipped without a GPU, run by ``scripts/gpu_check.sh`` on a lent one
(``pytest -m cuda``). In fp32 the fused step equals the readable reference; in bf16 / fp16
autocast the forward and backward run and give finite gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import softorder as so
from softorder.nn import ModuleBank, reference_forward
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock, sequence_view

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ORDERINGS = ["single", "parallel", "permuted", "soft", "gated", "routed"]
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
T = 3


def _bank(make: Callable[[], nn.Module]) -> Callable[[int], ModuleBank]:
    return lambda n: ModuleBank([make() for _ in range(n)])


def _net(kind: str, ordering: str) -> tuple[so.MultiTaskNet, list[torch.Tensor]]:
    """A small net of ``kind`` (the paper's dense and conv cores, and the blocks) and a batch."""
    if kind == "dense":
        return so.dense_net(6, [2, 3, 4], width=16, ordering=ordering), [torch.randn(8, 6) for _ in range(T)]
    if kind == "conv":
        net = so.conv_net([2, 3, 4], image_shape=(1, 28, 28), channels=8, padding=1, ordering=ordering,
                          depth_norm="rms")
        return net, [torch.rand(8, 1, 28, 28) for _ in range(T)]
    if kind == "resconv":
        net = so.conv_net([2, 3, 4], image_shape=(1, 16, 16), channels=8, ordering=ordering,
                          bank=_bank(lambda: ResidualConv(8, pool=2)))
        return net, [torch.rand(8, 1, 16, 16) for _ in range(T)]
    make: Callable[[], nn.Module] = (
        (lambda: ResidualMLP(16)) if kind == "resmlp"
        else (lambda: sequence_view(TransformerBlock(8, heads=2), 2, 8))
    )
    return so.dense_net(6, [2, 3, 4], width=16, ordering=ordering, bank=_bank(make)), [
        torch.randn(8, 6) for _ in range(T)]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("kind", ["dense", "conv", "resmlp", "resconv", "transformer"])
def test_every_block_and_ordering_trains_on_cuda(kind: str, ordering: str, dtype: str) -> None:
    torch.manual_seed(0)
    net, xs = _net(kind, ordering)
    net, xs = net.cuda(), [x.cuda() for x in xs]
    ys = [torch.randint(0, c, (8,), device="cuda") for c in (2, 3, 4)]
    with torch.autocast("cuda", dtype=DTYPES[dtype], enabled=DTYPES[dtype] is not None):
        logits = [z.float() for z in net(xs)]
    net.losses(logits, ys).sum().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    if dtype == "fp32":
        net.eval()
        for a, b in zip(net(xs), reference_forward(net, xs)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_the_readme_transformer_example_trains_on_cuda(dtype: str) -> None:
    """``SoftOrder`` over ``TransformerBlock(128, 4)`` (the crash of issue 22: LSE strides)."""
    torch.manual_seed(0)
    layer = so.SoftOrder([TransformerBlock(128, heads=4) for _ in range(4)], 8).cuda()
    x = torch.randn(64, 32, 128, device="cuda")
    task = torch.arange(64, device="cuda") % 8
    with torch.autocast("cuda", dtype=DTYPES[dtype], enabled=DTYPES[dtype] is not None):
        out = layer(x, task)
    out.float().square().mean().backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in layer.parameters() if p.grad is not None)
