"""Layer banks: the D shared layers F_1..F_D of Sec. 3, stored stacked so that all of them
run on a batch in ONE op.

:class:`LayerBank` is the interface the orderings (Sec. 3.1-3.3), the network and the readable
reference use. A bank answers these questions for a batch of rows ``y``:

* ``bank(y)``                   -> every layer on every row, ``[N, L, *out]`` (what soft ordering needs),
* ``bank.layer(j, y)``          -> layer ``F_j`` alone (the readable reference and parallel ordering),
* ``bank.segments(y, js, ns)``  -> layer ``js[i]`` on the i-th block of ``ns[i]`` rows
  (permuted and single-task orderings), one batched op when the blocks are the same size;
  ``bank.blocks(y, idx)`` is that batched op for a layer-index tensor ``idx`` (no host values, so
  it also runs under ``torch.func.vmap`` with per-trial orders);
* ``bank.output_shape(shape, depth)`` and ``bank.check_input(y, where)`` -> the shape of a row
  after ``depth`` layers, and a readable error for input the bank cannot take;
* ``bank.row_features(y)`` -> how many features a row of ``y`` stands for (a conv bank takes an
  image of fewer channels than its C as that image zero-padded to C, and reads only those channels).

A new kind of layer implements the abstract methods; ``segments`` and ``index_tensor`` come with
the base class. :class:`~softorder.nn.module_bank.ModuleBank` is the bank of any blocks of one
structure (residual or transformer blocks, a user's own).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Init = Literal["torch", "he"]


class Dropout(nn.Module):
    """Inverted dropout. On CPU the keep-mask is drawn 8 bytes per random number, which is ~15x
    faster than ``torch.bernoulli`` there; the drop probability is then rounded to a multiple of
    1/256 (exact for 0, 0.25, 0.5, 0.75). Other devices use ``F.dropout``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._threshold = round(p * 256)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64)
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self._threshold
        return x * keep.to(x.dtype).mul_(256.0 / (256 - self._threshold))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerBank(nn.Module, abc.ABC):
    """The stacked layers ``F_1..F_L`` shared by all tasks (Sec. 3): in the built-in banks
    ``weight[j]`` and ``bias[j]`` are layer j (``ModuleBank`` stacks any blocks' parameters).
    Subclasses implement :meth:`forward`, :meth:`layer`, :meth:`blocks`, :meth:`output_shape` and
    :meth:`check_input`; :meth:`segments` is built on them.

    ``supports_channels_last`` says whether the bank's inputs are images that may run in the
    channels-last memory layout (see :meth:`softorder.nn.orderings.Ordering.use_channels_last`).
    """

    weight: nn.Parameter
    bias: nn.Parameter
    supports_channels_last: ClassVar[bool] = False

    def __init__(self, num_layers: int, dropout: float, init: Init) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"a layer bank needs at least one layer, got num_layers={num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if init not in ("torch", "he"):
            raise ValueError(f"unknown init {init!r}; choose 'torch' (PyTorch default) or 'he'")
        self.num_layers = num_layers
        self.init = init
        self.dropout = Dropout(dropout)
        self._index_cache: dict[tuple[tuple[int, ...], torch.device], Tensor] = {}

    # -- what every bank implements ------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, y: Tensor) -> Tensor:
        """Every layer on every row: ``[N, *in] -> [N, L, *out]`` (the ``F_j(y^{k-1})`` of Eq. 7)."""

    @abc.abstractmethod
    def layer(self, j: int, y: Tensor) -> Tensor:
        """Layer ``F_j`` alone on all rows ``y`` (Eq. 2, 3)."""

    @abc.abstractmethod
    def blocks(self, y: Tensor, idx: Tensor) -> Tensor:
        """Layer ``idx[s]`` on the s-th of ``len(idx)`` equal blocks of rows, in one batched op.
        ``idx`` is a device tensor (no host values: it runs under ``torch.func.vmap``)."""

    @abc.abstractmethod
    def output_shape(self, in_shape: Sequence[int], depth: int) -> tuple[int, ...]:
        """Shape of one row after ``depth`` layers of this bank."""

    @abc.abstractmethod
    def check_input(self, y: Tensor, where: str, depth: int = 2) -> None:
        """Raise a ValueError naming ``where`` when ``y`` is not a batch this bank can take through
        ``depth`` depths (from 2 on, each depth's output is the next one's input)."""

    def row_features(self, y: Tensor) -> int:
        """How many features a row of ``y`` stands for: those it holds (a bank that takes some as
        implicit zeros says more)."""
        return math.prod(y.shape[1:])

    # -- built on them ---------------------------------------------------------------------------
    def segments(self, y: Tensor, layers: Sequence[int], counts: Sequence[int]) -> Tensor:
        """Layer ``layers[i]`` on the i-th block of ``counts[i]`` rows (a hard ordering's depth,
        Eq. 2, 3): :meth:`layer` once when every block takes the same layer, one :meth:`blocks`
        op when the blocks are the same size, else :meth:`layer` per block."""
        if len(set(layers)) == 1:
            return self.layer(layers[0], y)
        if len(set(counts)) > 1:
            return torch.cat([self.layer(j, part) for j, part in zip(layers, y.split(list(counts)))])
        return self.blocks(y, self.index_tensor(layers, y.device))

    def index_tensor(self, values: Sequence[int], device: torch.device) -> Tensor:
        """``values`` (layer or task ids) as a long tensor on ``device``, cached: a fresh
        host-to-device copy per step would stall the device."""
        key = (tuple(values), device)
        if key not in self._index_cache:
            with torch.inference_mode(False):  # kept for later steps, which may need autograd
                self._index_cache[key] = torch.tensor(values, device=device)
        return self._index_cache[key]

    def reset_parameters(self) -> None:
        """Initialise each layer as its own ``nn.Linear``/``nn.Conv2d`` would ('torch'), or with
        He-normal weights and zero bias ('he')."""
        with torch.no_grad():
            for j in range(self.num_layers):
                w = self.weight[j]
                fan_in = w[0].numel()
                if self.init == "he":
                    nn.init.kaiming_normal_(w, nonlinearity="relu")
                    self.bias[j].zero_()
                else:
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                    bound = 1.0 / math.sqrt(fan_in)
                    nn.init.uniform_(self.bias[j], -bound, bound)


class DenseBank(LayerBank):
    """``Linear(w->w) -> ReLU -> Dropout`` per layer (Sec. 4.1, 4.2, 4.4). All L layers run as one
    matmul with the ``[w, L*w]`` matrix ``weight.view(L*w, w).T``."""

    def __init__(self, width: int, num_layers: int, dropout: float = 0.0, init: Init = "torch") -> None:
        super().__init__(num_layers, dropout, init)
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.width = width
        self.weight = nn.Parameter(torch.empty(num_layers, width, width))  # [layer, out, in]
        self.bias = nn.Parameter(torch.empty(num_layers, width))
        self.reset_parameters()

    def _post(self, z: Tensor) -> Tensor:
        return self.dropout(F.relu(z))

    def forward(self, y: Tensor) -> Tensor:
        """All layers on all rows: ``[N, w] -> [N, L, w]``."""
        n, (L, w) = y.shape[0], (self.num_layers, self.width)
        z = torch.addmm(self.bias.view(L * w), y, self.weight.view(L * w, w).t())
        return self._post(z.view(n, L, w))

    def layer(self, j: int, y: Tensor) -> Tensor:
        """Layer j: ``[N, w] -> [N, w]``."""
        return self._post(F.linear(y, self.weight[j], self.bias[j]))

    def blocks(self, y: Tensor, idx: Tensor) -> Tensor:
        """Layer ``idx[s]`` on the s-th of ``len(idx)`` equal blocks of rows."""
        z = torch.baddbmm(  # [S, B, w]: block s through layer idx[s]
            self.bias[idx].unsqueeze(1),
            y.view(idx.shape[0], -1, y.shape[-1]),
            self.weight[idx].transpose(1, 2),
        )
        return self._post(z).view(y.shape[0], self.width)

    def output_shape(self, in_shape: Sequence[int], depth: int) -> tuple[int, ...]:
        return (self.width,)

    def check_input(self, y: Tensor, where: str, depth: int = 2) -> None:
        if y.dim() != 2 or y.shape[1] != self.width:
            raise ValueError(
                f"{where}: the dense core expects rows of {self.width} features, got shape "
                f"{tuple(y.shape)}; make the encoder output width {self.width}"
            )

    def extra_repr(self) -> str:
        return f"layers={self.num_layers}, width={self.width}, init={self.init!r}"


class ConvBank(LayerBank):
    """``Conv k×k (C->C) -> MaxPool -> ReLU -> Dropout`` per layer (Sec. 4.3, Omniglot). All L
    layers run as one convolution with ``L*C`` output channels.

    An input of ``c < C`` channels is taken as that image zero-padded to C channels (the identity
    encoder of Sec. 4.3), and only the weights of its ``c`` channels are read: the same numbers up
    to float rounding, without convolving C - c channels of zeros (at 105x105 the first depth of
    an Omniglot step was most of its arithmetic). The other channels' weights get zero gradient,
    as they would from zero inputs."""

    supports_channels_last = True

    def __init__(
        self,
        channels: int,
        num_layers: int,
        kernel_size: int = 3,
        padding: int = 0,
        pool: int = 2,
        dropout: float = 0.0,
        init: Init = "torch",
    ) -> None:
        super().__init__(num_layers, dropout, init)
        if channels < 1 or kernel_size < 1 or pool < 1 or padding < 0:
            raise ValueError(
                f"bad conv bank: channels={channels}, kernel_size={kernel_size}, pool={pool}, "
                f"padding={padding}; all must be positive (padding >= 0)"
            )
        self.channels, self.kernel_size, self.padding, self.pool = (channels, kernel_size, padding, pool)
        c, k = channels, kernel_size
        self.weight = nn.Parameter(torch.empty(num_layers, c, c, k, k))  # [layer, out, in, k, k]
        self.bias = nn.Parameter(torch.empty(num_layers, c))
        self.reset_parameters()

    def _post(self, z: Tensor) -> Tensor:
        if self.pool > 1:
            z = F.max_pool2d(z, self.pool)
        return self.dropout(F.relu(z))

    def _weight(self, y: Tensor) -> Tensor:
        """The weights ``[L, C, c, k, k]`` that read the ``c`` channels ``y`` holds."""
        return self.weight if y.shape[1] == self.channels else self.weight[:, :, : y.shape[1]]

    def forward(self, y: Tensor) -> Tensor:
        """All layers on all rows: ``[N, c <= C, H, W] -> [N, L, C, H', W']``."""
        L, c, k = self.num_layers, self.channels, self.kernel_size
        w = self._weight(y).reshape(L * c, y.shape[1], k, k)
        z = self._post(F.conv2d(y, w, self.bias.view(L * c), padding=self.padding))
        return z.view(y.shape[0], L, c, *z.shape[-2:])

    def layer(self, j: int, y: Tensor) -> Tensor:
        """Layer j: ``[N, c <= C, H, W] -> [N, C, H', W']``."""
        return self._post(F.conv2d(y, self._weight(y)[j], self.bias[j], padding=self.padding))

    def blocks(self, y: Tensor, idx: Tensor) -> Tensor:
        """Layer ``idx[s]`` on the s-th of ``len(idx)`` equal blocks of images."""
        # Blocks become channel groups of one grouped convolution: [B, S*c_in, H, W].
        s, c, c_in, k = idx.shape[0], self.channels, y.shape[1], self.kernel_size
        b = y.shape[0] // s
        x = y.view(s, b, c_in, *y.shape[-2:]).transpose(0, 1).reshape(b, s * c_in, *y.shape[-2:])
        z = self._post(
            F.conv2d(
                x,
                self._weight(y)[idx].reshape(s * c, c_in, k, k),
                self.bias[idx].reshape(s * c),
                padding=self.padding,
                groups=s,
            )
        )
        return z.view(b, s, c, *z.shape[-2:]).transpose(0, 1).reshape(s * b, c, *z.shape[-2:])

    def output_shape(self, in_shape: Sequence[int], depth: int) -> tuple[int, ...]:
        _, h, w = in_shape
        for _ in range(depth):
            h = (h + 2 * self.padding - self.kernel_size + 1) // self.pool
            w = (w + 2 * self.padding - self.kernel_size + 1) // self.pool
        if h < 1 or w < 1:
            raise ValueError(
                f"images of {in_shape[1]}x{in_shape[2]} vanish after {depth} conv layers "
                f"(kernel {self.kernel_size}, pool {self.pool}); use larger images, padding or fewer depths"
            )
        return (self.channels, h, w)

    def check_input(self, y: Tensor, where: str, depth: int = 2) -> None:
        if y.dim() != 4 or not 1 <= y.shape[1] <= self.channels:
            raise ValueError(
                f"{where}: the conv core expects [N, c, H, W] inputs with 1 <= c <= {self.channels} "
                f"channels (fewer stand for zero-padding), got shape {tuple(y.shape)}; project the "
                f"input to at most {self.channels} channels"
            )

    def row_features(self, y: Tensor) -> int:
        """A row of ``c <= C`` channels stands for its zero-padding to C: ``C * H * W`` features."""
        return self.channels * math.prod(y.shape[2:])

    def extra_repr(self) -> str:
        return (
            f"layers={self.num_layers}, channels={self.channels}, kernel={self.kernel_size}, "
            f"padding={self.padding}, pool={self.pool}, init={self.init!r}"
        )
