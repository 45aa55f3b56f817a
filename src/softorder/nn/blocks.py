"""Modern blocks to soft-order (Sec. 3.3 applies to any blocks whose output can be fed back).

* :class:`ResidualMLP` — pre-norm residual MLP: ``y + Linear(GELU(Linear(LayerNorm(y))))``;
* :class:`ResidualConv` — pre-activation residual conv block: ``y + conv(ReLU(GN(conv(ReLU(GN(y))))))``
  with 3×3 convs that keep the size, optionally followed by max-pooling;
* :class:`TransformerBlock` — ``nn.TransformerEncoderLayer`` with ``batch_first=True`` and
  ``norm_first=True`` (pre-norm), on ``[batch, sequence, d_model]``.

Each keeps its input's shape (the conv block's channels; pooling shrinks H and W), so any of them
can be a layer F_j of a :class:`~softorder.nn.module_bank.ModuleBank` at any depth.
:func:`sequence_view` lets a transformer block take flat vectors ``[batch, tokens * d_model]``
(the dense benchmarks' rows) as a sequence of ``tokens`` tokens. :data:`CORES` names the cores a
built-in benchmark can be given (the ``core`` config key).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

#: The cores of the built-in benchmarks: their own banks (``dense``: Linear -> ReLU, ``conv``:
#: conv -> pool -> ReLU) and the blocks of this module.
CORES = ("dense", "conv", "resmlp", "resconv", "transformer")


def he_init(module: nn.Module) -> nn.Module:
    """He-normal weights and zero biases for every ``nn.Linear`` and ``nn.Conv2d`` inside ``module``
    (the ``init: he`` of the built-in banks); returns ``module``."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear | nn.Conv2d):
            nn.init.kaiming_normal_(sub.weight, nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
    return module


class ResidualMLP(nn.Module):
    """Pre-norm residual MLP block: ``y + Linear(Dropout(GELU(Linear(LayerNorm(y)))))``,
    ``[N, width] -> [N, width]``, with ``hidden`` units (default ``4 * width``)."""

    def __init__(self, width: int, hidden: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if width < 1 or (hidden is not None and hidden < 1):
            raise ValueError(f"ResidualMLP needs positive sizes, got width={width}, hidden={hidden}")
        hidden = 4 * width if hidden is None else hidden
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: Tensor) -> Tensor:
        return y + self.fc2(self.dropout(F.gelu(self.fc1(self.norm(y)))))


def _groups(channels: int, most: int = 8, per_group: int = 4) -> int:
    """The largest group count <= ``most`` that divides ``channels`` into groups of at least
    ``per_group`` channels (64 channels: 8 groups, 24: 6, 53: 1). Groups of one or two channels
    normalise over few values once pooling has shrunk the images (ill-conditioned gradients)."""
    return max(g for g in range(1, most + 1) if channels % g == 0 and (g == 1 or channels // g >= per_group))


class ResidualConv(nn.Module):
    """Pre-activation residual conv block: ``y + conv2(ReLU(GN2(conv1(ReLU(GN1(y))))))`` with 3×3
    convs of ``channels`` filters that keep the size, then a ``pool``×``pool`` max-pool when
    ``pool > 1`` (then ``[N, C, H, W] -> [N, C, H // pool, W // pool]``). GroupNorm takes
    ``groups`` groups (default: the most, up to 8, of at least 4 channels each that divide
    ``channels``); ``dropout`` drops activations before the second conv."""

    def __init__(self, channels: int, pool: int = 1, groups: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if channels < 1 or pool < 1:
            raise ValueError(f"ResidualConv needs channels >= 1 and pool >= 1, got {channels}, {pool}")
        groups = _groups(channels) if groups is None else groups
        if channels % groups:
            raise ValueError(f"ResidualConv: groups={groups} must divide channels={channels}")
        self.pool = pool
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: Tensor) -> Tensor:
        z = self.conv1(F.relu(self.norm1(y)))
        y = y + self.conv2(self.dropout(F.relu(self.norm2(z))))
        return F.max_pool2d(y, self.pool) if self.pool > 1 else y

    def extra_repr(self) -> str:
        return f"pool={self.pool}"


class TransformerBlock(nn.TransformerEncoderLayer):
    """A pre-norm transformer encoder block on ``[N, sequence, d_model]``:
    ``nn.TransformerEncoderLayer(d_model, heads, ffn, dropout, activation, batch_first=True,
    norm_first=True)``, with a feed-forward width ``ffn`` of ``4 * d_model`` by default."""

    def __init__(
        self, d_model: int, heads: int, ffn: int | None = None, dropout: float = 0.0, activation: str = "gelu"
    ) -> None:
        if d_model < 1 or heads < 1 or d_model % heads:
            raise ValueError(f"TransformerBlock: heads ({heads}) must divide d_model ({d_model})")
        super().__init__(d_model, heads, 4 * d_model if ffn is None else ffn, dropout, activation,
                         batch_first=True, norm_first=True)


def sequence_view(block: nn.Module, tokens: int, d_model: int) -> nn.Sequential:
    """``block`` on flat rows: ``[N, tokens * d_model]`` viewed as ``tokens`` tokens of
    ``d_model`` features, and the block's output flattened back. The view a transformer core needs
    on vector tasks (the dense benchmarks' encoders give one vector per row)."""
    return nn.Sequential(nn.Unflatten(1, (tokens, d_model)), block, nn.Flatten(1))
