"""The drop-in SoftOrder layer (nn/soft_order.py, Sec. 3.3 Eq. 7): per-row task ids in any order.

Outputs and gradients must equal a plain loop over the ORIGINAL modules (fp32, 1e-5).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import softorder
import softorder.nn
from softorder.nn import ConvBank, DenseBank, ModuleBank, SoftOrder, reference_soft_order
from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock

T = 3


class Scaled(nn.Module):
    """A user's own block: ``tanh(a * lin(y)) + y``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin, self.a = nn.Linear(width, width), nn.Parameter(torch.ones(()))

    def forward(self, y: Tensor) -> Tensor:
        return torch.tanh(self.a * self.lin(y)) + y


KINDS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resmlp": (lambda: ResidualMLP(6, hidden=8), (6,)),
    "resconv": (lambda: ResidualConv(4), (4, 5, 5)),
    "transformer": (lambda: TransformerBlock(8, heads=2, ffn=12), (4, 8)),
    "user": (lambda: Scaled(6), (6,)),
}


def _get(module: nn.Module, name: str) -> Tensor:
    return functools.reduce(getattr, name.split("."), module)  # type: ignore[arg-type, return-value]


def _loop(layer: SoftOrder, blocks: list[nn.Module], x: Tensor, task: Tensor) -> Tensor:
    """Row by row, depth by depth, Eq. 7 with the original modules."""
    w = layer.weights()
    rows = []
    for i, t in enumerate(task.tolist()):
        y = x[i : i + 1]
        for k in range(layer.depth):
            y = sum(w[t, k, j] * blocks[j](y) for j in range(len(blocks)))  # type: ignore[assignment]
        rows.append(y)
    return torch.cat(rows)


@pytest.mark.parametrize("depth", [None, 2, 5])
@pytest.mark.parametrize("kind", list(KINDS))
def test_shuffled_task_ids_equal_a_loop_over_the_modules(kind: str, depth: int | None) -> None:
    torch.manual_seed(0)
    make, shape = KINDS[kind]
    blocks = [make() for _ in range(3)]
    originals = copy.deepcopy(blocks)
    layer = SoftOrder(blocks, T, depth=depth).eval()
    assert layer.S.shape == (T, depth or 3, 3) and bool((layer.S == 0).all())
    nn.init.normal_(layer.S)
    x = torch.randn(7, *shape, requires_grad=True)
    task = torch.tensor([2, 0, 1, 1, 2, 0, 2])[torch.randperm(7)]
    fused, loop = layer(x, task), _loop(layer, originals, x, task)
    torch.testing.assert_close(fused, loop, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused, reference_soft_order(layer, x, task), atol=1e-5, rtol=1e-5)

    probe = torch.randn_like(fused)
    assert isinstance(layer.bank, ModuleBank)
    names = [n for n, _ in layer.bank.stacked.named_parameters()]
    stacked = [_get(layer.bank.stacked, n) for n in names]
    g_fused = torch.autograd.grad((fused * probe).sum(), [x, layer.S, *stacked])
    per_block = [_get(m, n) for n in names for m in originals]
    g_loop = torch.autograd.grad((loop * probe).sum(), [x, layer.S, *per_block])
    torch.testing.assert_close(g_fused[0], g_loop[0], atol=1e-5, rtol=1e-5)  # the input
    torch.testing.assert_close(g_fused[1], g_loop[1], atol=1e-5, rtol=1e-5)  # S
    for i, g in enumerate(g_fused[2:]):
        torch.testing.assert_close(g, torch.stack(g_loop[2 + 3 * i : 5 + 3 * i]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_depth_norm_rms_equals_the_reference(kind: str) -> None:
    """``SoftOrder(..., depth_norm="rms")``: each depth reads unit-RMS rows, as the reference does."""
    torch.manual_seed(2)
    make, shape = KINDS[kind]
    layer = SoftOrder([make() for _ in range(3)], T, depth_norm="rms").eval()
    nn.init.normal_(layer.S)
    x = torch.randn(5, *shape) * torch.logspace(-3, 1, 5).view(5, *[1] * len(shape))
    task = torch.tensor([2, 0, 1, 0, 2])
    fused = layer(x, task)
    torch.testing.assert_close(fused, reference_soft_order(layer, x, task), atol=1e-5, rtol=1e-5)
    plain = SoftOrder(layer.bank, T).eval()  # the same blocks and S, no depth norm
    with torch.no_grad():
        plain.S.copy_(layer.S)
    assert not torch.allclose(fused, plain(x, task), atol=1e-3)


def test_one_int_task_for_the_whole_batch() -> None:
    torch.manual_seed(1)
    layer = SoftOrder([ResidualMLP(4) for _ in range(2)], 3, norm="l2")
    nn.init.normal_(layer.S)
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer(x, 2), layer(x, torch.full((5,), 2)))
    assert not torch.allclose(layer(x, 2), layer(x, 0))
    torch.testing.assert_close(layer.weights().norm(dim=-1), torch.ones(3, 2))


def test_soft_order_is_exported_and_its_parameters_round_trip() -> None:
    assert softorder.SoftOrder is softorder.nn.SoftOrder is SoftOrder
    torch.manual_seed(2)
    layer = SoftOrder([TransformerBlock(8, 2) for _ in range(3)], 2).eval()
    names = dict(layer.named_parameters())
    assert "core.S" in names and names["core.S"] is layer.S
    assert layer.S in list(layer.parameters())
    nn.init.normal_(layer.S)
    other = SoftOrder([TransformerBlock(8, 2) for _ in range(3)], 2).eval()
    other.load_state_dict(layer.state_dict())
    x, task = torch.randn(4, 6, 8), torch.tensor([1, 0, 0, 1])
    torch.testing.assert_close(other(x, task), layer(x, task))


def test_a_ready_layer_bank_is_taken_as_it_is() -> None:
    bank = DenseBank(4, 3)
    layer = SoftOrder(bank, 2, depth=4)
    assert layer.bank is bank and layer.S.shape == (2, 4, 3)
    assert layer(torch.randn(3, 4), torch.tensor([0, 1, 0])).shape == (3, 4)


@pytest.mark.parametrize(
    "task, message",
    [
        (3, r"task id 3 is out of range: the layer has tasks 0\.\.2"),
        (torch.tensor([0, 1, 3, 0]), r"task id 3 is out of range"),
        (torch.tensor([0, -1, 1, 0]), r"task id -1 is out of range"),
        (torch.tensor([0.0, 1.0, 1.0, 0.0]), r"an int or a LongTensor of row task ids, not torch\.float32"),
        (True, r"an int or a LongTensor .* not bool"),
        (torch.tensor([0, 1]), r"task ids of shape \(2,\) for 4 rows"),
    ],
)
def test_bad_task_ids_are_refused(task: object, message: str) -> None:
    layer = SoftOrder([ResidualMLP(4) for _ in range(2)], 3)
    with pytest.raises(ValueError, match=message):
        layer(torch.randn(4, 4), task)  # type: ignore[arg-type]


def test_input_the_blocks_cannot_take_is_refused() -> None:
    layer = SoftOrder([ResidualMLP(4) for _ in range(2)], 3)
    with pytest.raises(ValueError, match=r"SoftOrder input: the blocks cannot take rows of shape \(5,\)"):
        layer(torch.randn(2, 5), 0)


def test_one_depth_does_not_ask_the_blocks_to_take_their_own_output() -> None:
    """``depth=1`` feeds nothing back: blocks that change the row size are fine there, and refused
    (naming depth 2) as soon as a second depth would feed their output back."""
    x = torch.randn(5, 8)
    assert SoftOrder([nn.Linear(8, 4) for _ in range(2)], 2, depth=1)(x, 0).shape == (5, 4)
    with pytest.raises(ValueError, match="at depth 2"):
        SoftOrder([nn.Linear(8, 4) for _ in range(2)], 2, depth=2)(x, 0)


def test_the_reference_pads_a_conv_banks_input_as_the_bank_does() -> None:
    """A 1-channel image into a conv bank of C channels stands for its zero-padding to C, in the
    reference too (the RMS of ``depth_norm="rms"`` is over C channels)."""
    torch.manual_seed(3)
    layer = SoftOrder(ConvBank(8, 3, padding=1, pool=1), 2, depth_norm="rms").eval()
    nn.init.normal_(layer.S)
    x, task = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(layer(x, task), reference_soft_order(layer, x, task), atol=1e-5, rtol=1e-5)
