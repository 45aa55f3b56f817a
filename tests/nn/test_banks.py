"""The layer-bank interface (nn/banks.py, the shared layers of Sec. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from softorder.nn import ConvBank, DenseBank, LayerBank

ABSTRACT = ("forward", "layer", "blocks", "output_shape", "check_input")


class _Identity(LayerBank):
    """A complete toy bank: every layer is the identity."""

    def __init__(self, num_layers: int) -> None:
        super().__init__(num_layers, 0.0, "torch")

    def forward(self, y: Tensor) -> Tensor:
        return y.unsqueeze(1).expand(-1, self.num_layers, *y.shape[1:])

    def layer(self, j: int, y: Tensor) -> Tensor:
        return y + 0 * j

    def blocks(self, y: Tensor, idx: Tensor) -> Tensor:
        return y.view(idx.shape[0], -1, *y.shape[1:]).add(0 * idx.view(-1, 1, 1)).view_as(y)

    def output_shape(self, in_shape: Sequence[int], depth: int) -> tuple[int, ...]:
        return tuple(in_shape)

    def check_input(self, y: Tensor, where: str) -> None:
        pass


def test_layer_bank_declares_what_the_orderings_call() -> None:
    assert LayerBank.__abstractmethods__ == frozenset(ABSTRACT)
    with pytest.raises(TypeError, match="abstract"):
        LayerBank(2, 0.0, "torch")  # type: ignore[abstract]
    assert _Identity(3).segments(torch.ones(4, 2), [0, 1], [2, 2]).shape == (4, 2)


@pytest.mark.parametrize("missing", ABSTRACT)
def test_a_bank_missing_a_method_cannot_be_built(missing: str) -> None:
    methods = {name: getattr(_Identity, name) for name in ABSTRACT if name != missing}
    partial = type("Partial", (LayerBank,), {"__init__": _Identity.__init__, **methods})
    with pytest.raises(TypeError, match=missing):
        partial(2)


@pytest.mark.parametrize(
    "bank, shape",
    [(DenseBank(6, 3), (6,)), (ConvBank(3, 3, padding=1), (3, 8, 8))],
    ids=["dense", "conv"],
)
def test_segments_is_one_method_for_every_bank(bank: LayerBank, shape: tuple[int, ...]) -> None:
    assert "segments" not in type(bank).__dict__  # written once, in LayerBank
    y = torch.randn(6, *shape)
    for layers, counts in [([1, 1, 1], [2, 2, 2]), ([0, 2, 1], [2, 2, 2]), ([2, 0], [1, 5])]:
        parts = y.split(counts)
        want = torch.cat([bank.layer(j, part) for j, part in zip(layers, parts)])
        torch.testing.assert_close(bank.segments(y, layers, counts), want)


def test_index_tensor_is_cached_per_values_and_device() -> None:
    bank = DenseBank(4, 3)
    a = bank.index_tensor([2, 0, 1], torch.device("cpu"))
    assert a.tolist() == [2, 0, 1] and a.dtype == torch.long
    assert bank.index_tensor((2, 0, 1), torch.device("cpu")) is a
    assert bank.index_tensor([0, 1], torch.device("cpu")) is not a


def test_only_image_banks_take_channels_last() -> None:
    assert ConvBank.supports_channels_last and not DenseBank.supports_channels_last
