"""The modern blocks (nn/blocks.py): what each computes, and that its output can be fed back."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softorder.nn.blocks import ResidualConv, ResidualMLP, TransformerBlock, _groups, he_init, sequence_view


def test_residual_mlp_is_pre_norm_linear_gelu_linear_plus_skip() -> None:
    torch.manual_seed(0)
    block = ResidualMLP(6, hidden=10)
    y = torch.randn(4, 6)
    want = y + block.fc2(F.gelu(block.fc1(F.layer_norm(y, (6,), block.norm.weight, block.norm.bias))))
    torch.testing.assert_close(block(y), want)
    assert block.fc1.out_features == 10 and ResidualMLP(6).fc1.out_features == 24


def test_residual_conv_is_pre_activation_with_skip_then_pool() -> None:
    torch.manual_seed(1)
    block = ResidualConv(8, pool=2)
    y = torch.randn(2, 8, 6, 6)
    z = block.conv1(F.relu(block.norm1(y)))
    want = F.max_pool2d(y + block.conv2(F.relu(block.norm2(z))), 2)
    torch.testing.assert_close(block(y), want)
    assert block(y).shape == (2, 8, 3, 3) and ResidualConv(8)(y).shape == y.shape
    assert block.norm1.num_groups == 2 and ResidualConv(8, groups=4).norm1.num_groups == 4


@pytest.mark.parametrize("channels, groups", [(64, 8), (24, 6), (53, 1), (4, 1), (16, 4)])
def test_group_norm_groups_have_at_least_four_channels(channels: int, groups: int) -> None:
    assert _groups(channels) == groups


def test_transformer_block_is_a_pre_norm_batch_first_encoder_layer() -> None:
    torch.manual_seed(2)
    block = TransformerBlock(8, heads=2).eval()
    assert isinstance(block, nn.TransformerEncoderLayer)
    assert block.norm_first and block.self_attn.batch_first and block.linear1.out_features == 32
    ref = nn.TransformerEncoderLayer(8, 2, 32, 0.0, "gelu", batch_first=True, norm_first=True).eval()
    ref.load_state_dict(block.state_dict())
    y = torch.randn(3, 5, 8)
    torch.testing.assert_close(block(y), ref(y))


def test_sequence_view_runs_a_block_on_flat_rows() -> None:
    torch.manual_seed(3)
    block = TransformerBlock(4, heads=2).eval()
    view = sequence_view(block, tokens=3, d_model=4)
    y = torch.randn(5, 12)
    torch.testing.assert_close(view(y), block(y.view(5, 3, 4)).reshape(5, 12))


def test_he_init_sets_linear_and_conv_weights() -> None:
    torch.manual_seed(4)
    block = he_init(ResidualMLP(256, hidden=256))
    assert float(block.fc1.bias.detach().abs().sum()) == 0.0
    assert block.fc1.weight.detach().std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    assert float(he_init(ResidualConv(4)).conv2.bias.detach().abs().sum()) == 0.0


def test_bad_block_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"heads \(3\) must divide d_model \(8\)"):
        TransformerBlock(8, heads=3)
    with pytest.raises(ValueError, match=r"groups=3 must divide channels=8"):
        ResidualConv(8, groups=3)
    with pytest.raises(ValueError, match="positive sizes"):
        ResidualMLP(0)
