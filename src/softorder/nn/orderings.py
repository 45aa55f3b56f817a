"""Orderings of a layer bank over T tasks and K depths: the four methods of Sec. 3.

=============  ===========================================================  ========
ordering       depth k of task t applies                                    paper
=============  ===========================================================  ========
``parallel``   layer k, for every task                                      Eq. 2
``permuted``   layer ``order[t, k]``, a fixed random permutation per task   Eq. 3
``soft``       ``Σ_j softmax(S[t, k])_j · F_j`` with S learned               Eq. 7
``single``     task t's private layer k (no sharing)                        Sec. 4
=============  ===========================================================  ========

Every ordering runs *fused*: the rows of all tasks are stacked along the batch and go through the
core together. :class:`Rows` says which task owns which contiguous block of rows.

:class:`Ordering` is the interface the network, the trainers and run health use. Two options
change how a core runs, never what it computes; each is a constructor argument (threaded through
:func:`make_ordering` and the network builders), and a declared method switches it on after
construction for code that wraps a net it did not build:

* ``channels_last`` / :meth:`Ordering.use_channels_last` — an image core runs on NHWC tensors;
* ``orders_on_device`` / :meth:`HardOrdering.use_orders_on_device` — a hard ordering reads its
  layers from the ``order`` buffer only, so ``torch.func.vmap`` over stacked trials gives each
  trial its own orders.

The module is over 400 lines on purpose: it is Sec. 3 in one file, the interface next to its four
implementations.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from softorder.nn.banks import LayerBank

#: The four methods of the paper (what ``compare`` runs by default), and every ordering.
PAPER_ORDERINGS = ("single", "parallel", "permuted", "soft")
#: The orderings that followed soft ordering (softorder.nn.learned).
FOLLOW_UPS = ("gated", "routed")
ORDERINGS = (*PAPER_ORDERINGS, *FOLLOW_UPS)
#: The orderings that learn S (any number of depths; S has its own learning rate ``s_lr``).
LEARNED = ("soft", "gated", "routed")
SOFT_NORMS = ("none", "l2")
#: What each depth k reads: ``none`` -- ``y^{k-1}`` as it is (the paper); ``rms`` -- ``y^{k-1}``
#: divided by its root mean square over the features of each row (:func:`rms_normalise`).
DEPTH_NORMS = ("none", "rms")
#: Added to the mean square in :func:`rms_normalise`: small enough that a signal of RMS 1e-5 (a
#: dying core's last depth) is still scaled to within 1% of one, and nonzero so an all-zero row stays zero.
RMS_EPS = 1e-12


@dataclass(frozen=True)
class Rows:
    """Rows ``sum(counts[:i]) .. sum(counts[:i+1])`` of a stacked batch belong to ``tasks[i]``.

    :meth:`of` gives the one instance of a layout, so that what is derived from it (the row index
    on a device, :meth:`index`) is built once and reused by every later step of that layout: no
    tensor is made from host values, and nothing is copied to the device, per step."""

    tasks: tuple[int, ...]
    counts: tuple[int, ...]
    _index: dict[torch.device, Tensor] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def of(tasks: tuple[int, ...], counts: tuple[int, ...]) -> Rows:
        """The shared instance of the layout (``tasks``, ``counts``); a fresh one while
        ``torch.compile`` traces (dynamo does not trace through a cache; the index it builds is a
        constant of the compiled graph)."""
        if torch.compiler.is_compiling():
            return Rows(tasks, counts)
        return _shared_rows(tasks, counts)

    @property
    def uniform(self) -> bool:
        return len(set(self.counts)) <= 1

    def index(self, device: torch.device) -> Tensor:
        """Task id of every row, ``[N]``: made from host values, so its length is known without a
        device sync, and under ``torch.compile`` it is a constant of the graph (no graph break)."""
        if device not in self._index:
            with torch.inference_mode(False):  # kept for later steps, which may need autograd
                ids = [t for t, n in zip(self.tasks, self.counts) for _ in range(n)]
                self._index[device] = torch.tensor(ids, dtype=torch.long).to(device, non_blocking=True)
        return self._index[device]


@functools.lru_cache(maxsize=256)
def _shared_rows(tasks: tuple[int, ...], counts: tuple[int, ...]) -> Rows:
    return Rows(tasks, counts)


#: Soft ordering on the CPU mixes flat rows in blocks of about this many ``[rows, L, F]`` elements
#: (8 MB of fp32), and never in blocks of fewer than ``MIN_BLOCK_ROWS`` rows.
ROW_BLOCK_ELEMENTS, MIN_BLOCK_ROWS = 2**21, 256


def soft_order_step(outputs: Tensor, weights: Tensor) -> Tensor:
    """One depth of soft ordering (Eq. 7): ``y^k = Σ_j s_j · F_j(y^{k-1})``.

    ``outputs`` holds every layer's output ``F_j(y^{k-1})`` as ``[N, L, *features]`` and
    ``weights`` the mixing weights ``softmax(S[t, k])`` of each row's task as ``[N, L]``.
    """
    return (weights.view(*weights.shape, *[1] * (outputs.dim() - 2)) * outputs).sum(1)


def rms_normalise(y: Tensor, features: int | None = None) -> Tensor:
    """Each row of ``y`` (``[N, *features]``) divided by its root mean square over its ``features``
    features (default: all it holds; more when the rest are implicit zeros, as for a conv bank's
    zero-padded channels), computed in float32 whatever the autocast dtype: a parameter-free scale
    of one at the input of every depth (``depth_norm="rms"``), so that He initialisation's
    assumption holds at every depth and Adam's steps of about ``lr`` on the biases stay small next
    to the signal (docs/results.md, "Soft ordering that cannot die")."""
    n = math.prod(y.shape[1:]) if features is None else features
    ms = y.float().pow(2).sum(dim=tuple(range(1, y.dim())), keepdim=True) / n
    return (y * torch.rsqrt(ms + RMS_EPS)).to(y.dtype)


def _to_channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    y, *rest = args
    return (y.contiguous(memory_format=torch.channels_last), *rest)


class Ordering(nn.Module, abc.ABC):
    """An ordered core (Sec. 3): the layer bank ``bank`` applied over ``depth`` depths for
    ``num_tasks`` tasks. Subclasses implement :meth:`forward`, ``y^K`` of every row's task, and
    name themselves in ``name``. ``channels_last=True`` runs an image core on NHWC tensors
    (:meth:`use_channels_last`). ``depth_norm`` (one of :data:`DEPTH_NORMS`) says what each depth
    reads: ``"rms"`` gives ``y^{k-1}`` unit RMS per row first (:meth:`depth_input`)."""

    name: ClassVar[str] = ""

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int, *, channels_last: bool = False,
        depth_norm: str = "none",
    ) -> None:
        super().__init__()
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be at least 1, got {num_tasks}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if depth_norm not in DEPTH_NORMS:
            raise ValueError(f"unknown depth_norm {depth_norm!r}; choose one of {', '.join(DEPTH_NORMS)}")
        self.depth_norm = depth_norm
        if channels_last and not bank.supports_channels_last:
            raise ValueError(
                f"channels_last applies to image banks (ConvBank), not {type(bank).__name__}"
            )
        self.bank, self.num_tasks, self.depth = bank, num_tasks, depth
        self._trace: list[Tensor] | None = None
        self._channels_last = False
        if channels_last:
            self.use_channels_last()

    @abc.abstractmethod
    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        """The core's output ``y^K`` of each row, ``y`` the stacked encoder outputs ``y^0`` whose
        blocks belong to the tasks of ``rows``. Calls :meth:`_depth_done` on every ``y^k``."""

    def depth_input(self, y: Tensor) -> Tensor:
        """What a depth reads of the previous depth's output ``y^{k-1}`` (or the encoder's ``y^0``):
        ``y`` itself, or with ``depth_norm="rms"`` each row scaled to unit RMS (:func:`rms_normalise`)."""
        return rms_normalise(y, self.bank.row_features(y)) if self.depth_norm == "rms" else y

    @property
    def channels_last(self) -> bool:
        """True when the core runs on NHWC ("channels last") tensors (:meth:`use_channels_last`)."""
        return self._channels_last

    def use_channels_last(self) -> bool:
        """Run the core channels-last from now on: forward pre-hooks convert the core's input, and
        the input of every ``bank(y)`` call (each depth of soft ordering, whose mixing step returns
        NCHW), to NHWC; conv, max-pool and ReLU keep that layout, so parallel ordering stays NHWC
        throughout. (Permuted and single orderings regroup rows for a grouped convolution, which
        returns NCHW after the first depth.) The numbers are those of NCHW up to float rounding.
        Idempotent. Returns False (and changes nothing) when the bank does not take images
        (``bank.supports_channels_last``)."""
        if not self.bank.supports_channels_last:
            return False
        if not self._channels_last:
            self.register_forward_pre_hook(_to_channels_last)
            self.bank.register_forward_pre_hook(_to_channels_last)
            self._channels_last = True
        return True

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Tensor]]:
        """Inside the block every forward appends each depth's output ``y^k`` (detached) to the
        yielded list: what run health (dead units, activation scale per depth) reads."""
        self._trace = []
        try:
            yield self._trace
        finally:
            self._trace = None

    def _depth_done(self, y: Tensor) -> Tensor:
        if self._trace is not None:
            self._trace.append(y.detach())
        return y

    def summary(self) -> dict[str, Any]:
        """What a run's ``result.json`` records of the core beyond S (a router's choices)."""
        return {}

    @torch.no_grad()
    def advance(self) -> None:
        """Move on one training step: call it after every optimizer step (softorder's trainers do).
        Nothing happens for a core without such state; a router counts the step that anneals its
        temperature and notes whether its choices changed (:meth:`advance_state`)."""
        own = self.named_parameters(recurse=False), self.named_buffers(recurse=False)
        self.advance_state({name: t for named in own for name, t in named})

    def advance_state(self, state: dict[str, Tensor]) -> None:
        """:meth:`advance` on ``state``: this core's own parameters and buffers by name, possibly
        stacked with leading trial dimensions (the vectorised trials); updated in place."""
        return None

    @contextlib.contextmanager
    def recording_summary(self) -> Iterator[dict[str, Any]]:
        """Yields a dict that, when the block ends, holds :meth:`summary` and what the forwards
        inside showed (a gated core: how its weights vary across the rows): run on the test split,
        what ``result.json`` records of the core."""
        seen: dict[str, Any] = {}
        try:
            yield seen
        finally:
            seen.update(self.summary())

    @property
    def num_layers(self) -> int:
        """Layers per task (the bank's layer count, except for ``single``)."""
        return self.bank.num_layers

    @property
    def shares_path(self) -> bool:
        """True when every task takes the same path (parallel): single-input mode can then run the
        core once for all tasks."""
        return False


class HardOrdering(Ordering):
    """Each task applies one layer per depth: ``y^k = F_{order[t, k]}(y^{k-1})`` (Eq. 2, 3).

    ``orders_on_device=True`` reads the layers from the ``order`` buffer, never from its host copy
    (:meth:`use_orders_on_device`)."""

    order: Tensor

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int, order: Tensor, *,
        channels_last: bool = False, orders_on_device: bool = False, depth_norm: str = "none",
    ) -> None:
        super().__init__(bank, num_tasks, depth, channels_last=channels_last, depth_norm=depth_norm)
        self.register_buffer("order", order.long())  # [T, K]; in the state_dict
        self._order_list: list[list[int]] = self.order.tolist()
        self._orders_on_device = orders_on_device

    @property
    def orders_on_device(self) -> bool:
        """True when the layers are read from the ``order`` buffer (:meth:`use_orders_on_device`)."""
        return self._orders_on_device

    def use_orders_on_device(self) -> None:
        """Read the layers from the ``order`` buffer, never from the host copy, from now on, so that
        ``torch.func.vmap`` over stacked trials (``functional_call`` with each trial's buffers)
        gives each trial its own orders (train/trials.py). Needs equal row counts per task; one
        batched op per depth gives the host path's numbers up to float rounding. Idempotent."""
        self._orders_on_device = True

    def layer_at(self, task: int, depth: int) -> int:
        """Index into the bank of the layer task ``task`` applies at ``depth``."""
        return self._order_list[task][depth]

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        if self.orders_on_device:
            return self._forward_on_device(y, rows)
        for k in range(self.depth):
            layers = [self._order_list[t][k] for t in rows.tasks]
            y = self._depth_done(self.bank.segments(self.depth_input(y), layers, rows.counts))
        return y

    def _forward_on_device(self, y: Tensor, rows: Rows) -> Tensor:
        if not rows.uniform:
            raise ValueError(
                f"orders_on_device needs equal row counts per task, got {rows.counts}; "
                "give every task the same batch size"
            )
        order = self.order[self.bank.index_tensor(rows.tasks, y.device)]  # [S, K]: each block's orders
        for k in range(self.depth):
            y = self._depth_done(self.bank.blocks(self.depth_input(y), order[:, k]))
        return y

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._order_list = self.order.tolist()


class ParallelOrdering(HardOrdering):
    """Classic deep MTL: depth k applies layer k for every task (Eq. 2). ``depth`` may be a
    multiple of the layer count: the layers then run again in the same order (layer ``k mod L``),
    the hard counterpart of soft ordering's recurrent depth (Sec. 6). ``orders_on_device`` is
    accepted for a uniform interface; parallel ordering never reads its orders."""

    name = "parallel"

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, *,
        channels_last: bool = False, orders_on_device: bool = False, depth_norm: str = "none",
    ) -> None:
        depth = resolve_depth("parallel", bank.num_layers, depth)
        order = (torch.arange(depth) % bank.num_layers).repeat(num_tasks, 1)
        super().__init__(bank, num_tasks, depth, order, channels_last=channels_last,
                         orders_on_device=orders_on_device, depth_norm=depth_norm)

    @property
    def shares_path(self) -> bool:
        return True

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        for k in range(self.depth):
            y = self._depth_done(self.bank.layer(k % self.bank.num_layers, self.depth_input(y)))
        return y


class PermutedOrdering(HardOrdering):
    """Each task applies the shared layers in its own fixed random order (Eq. 3). The orders are
    drawn from ``seed`` at construction and kept in the state_dict."""

    name = "permuted"

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, seed: int = 0, *,
        channels_last: bool = False, orders_on_device: bool = False, depth_norm: str = "none",
    ) -> None:
        depth = resolve_depth("permuted", bank.num_layers, depth)
        gen = torch.Generator().manual_seed(seed)
        order = torch.stack([torch.randperm(depth, generator=gen) for _ in range(num_tasks)])
        super().__init__(bank, num_tasks, depth, order, channels_last=channels_last,
                         orders_on_device=orders_on_device, depth_norm=depth_norm)


class SingleTaskOrdering(HardOrdering):
    """No sharing: task t owns layers ``t*L .. t*L+L-1`` of a bank with ``T*L`` layers, applied in
    parallel order. The single-task baseline with an equivalent core (Sec. 4)."""

    name = "single"

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, *,
        channels_last: bool = False, orders_on_device: bool = False, depth_norm: str = "none",
    ) -> None:
        if bank.num_layers % num_tasks:
            raise ValueError(
                f"single-task ordering needs a bank of num_tasks*L layers; got {bank.num_layers} "
                f"layers for {num_tasks} tasks"
            )
        per_task = bank.num_layers // num_tasks
        resolve_depth("single", per_task, depth)
        order = torch.arange(num_tasks)[:, None] * per_task + torch.arange(per_task)
        super().__init__(bank, num_tasks, per_task, order, channels_last=channels_last,
                         orders_on_device=orders_on_device, depth_norm=depth_norm)

    @property
    def num_layers(self) -> int:
        return self.bank.num_layers // self.num_tasks


class SoftOrdering(Ordering):
    """Soft layer ordering (Sec. 3.3, Eq. 7). ``S[t, k, j]`` scales layer j at depth k for task t;
    the weights ``softmax(S[t, k] / temperature)`` sum to one over layers. S starts at zero, i.e.
    every layer weighted equally, and is learned with the layers. ``depth`` may exceed the number of
    layers (layers reused across more depths: the recurrent-like extension of Sec. 6)."""

    name = "soft"
    weights_note = ""  # what a subclass's weights add to softmax(S), for weights_label

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, temperature: float = 1.0,
        norm: str = "none", *, channels_last: bool = False, depth_norm: str = "none",
    ) -> None:
        depth = bank.num_layers if depth is None else depth
        super().__init__(bank, num_tasks, depth, channels_last=channels_last, depth_norm=depth_norm)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if norm not in SOFT_NORMS:
            raise ValueError(f"unknown soft-ordering norm {norm!r}; choose one of {', '.join(SOFT_NORMS)}")
        self.temperature, self.norm = temperature, norm
        self.S = nn.Parameter(torch.zeros(num_tasks, self.depth, bank.num_layers))

    @classmethod
    def weights_label(cls, temperature: float = 1.0, norm: str = "none") -> str:
        """What :meth:`weights` (a run's logged ``S``) holds, in words, for an ordering built with
        this ``temperature`` and ``norm``: the axis label of the reports' S plots."""
        text = "softmax(S)" if temperature == 1.0 else f"softmax(S/{temperature:g})"
        return f"mixing weights ({text}{'/‖·‖₂' if norm == 'l2' else ''}{cls.weights_note})"

    def weights(self) -> Tensor:
        """The mixing weights over layers, ``[T, K, L]``: ``softmax(S / temperature)`` (Eq. 7), or
        with ``norm="l2"`` that divided by its L2 norm, so that a mixture of L independent layers
        keeps the scale of one layer (uniform S: x sqrt(L)) while a one-hot S is unchanged."""
        return self.normalised(torch.softmax(self.S / self.temperature, dim=-1))

    def normalised(self, w: Tensor) -> Tensor:
        """Mixing weights ``w`` (``[..., L]``, summing to one) as ``norm`` says: as they are, or
        divided by their L2 norm (``norm="l2"``)."""
        return w / w.norm(dim=-1, keepdim=True) if self.norm == "l2" else w

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        return self.forward_ids(y, rows.index(y.device))

    def forward_ids(self, y: Tensor, task_ids: Tensor) -> Tensor:
        """``y^K`` of rows in any task order: row i belongs to task ``task_ids[i]`` (a long tensor
        ``[N]`` on ``y``'s device). What :meth:`forward` and :class:`~softorder.nn.SoftOrder` run."""
        mixing = self.mixing(task_ids)
        chunk = self._row_chunk(y)
        for k in range(self.depth):
            y = self.depth_input(y)
            wk = mixing(k, y)  # [N, L]
            if chunk is None:
                y = self._depth_done(soft_order_step(self.bank(y), wk))
            else:  # the same per row, in blocks of rows whose [rows, L, F] products stay in cache
                parts = zip(y.split(chunk), wk.split(chunk))
                y = self._depth_done(torch.cat([soft_order_step(self.bank(yc), wc) for yc, wc in parts]))
        return y

    def row_weights(self, task_ids: Tensor) -> Tensor:
        """The mixing weights of each row at every depth, ``[N, K, L]``: its task's :meth:`weights`.
        (A learned routing overrides it: :class:`~softorder.nn.RoutedOrdering`.)"""
        return self.weights()[task_ids]

    def mixing(self, task_ids: Tensor) -> Callable[[int, Tensor], Tensor]:
        """``(k, y) -> [N, L]``: the mixing weights of the rows ``task_ids`` at depth ``k``, whose
        input is ``y``: here depth k of :meth:`row_weights`, whatever ``y`` is. (An input-gated
        ordering computes them from ``y``: :class:`~softorder.nn.GatedOrdering`.)"""
        w = self.row_weights(task_ids)  # [N, K, L]: each row gets its task's S
        return lambda k, y: w[:, k]

    def _row_chunk(self, y: Tensor) -> int | None:
        """Rows per block on the CPU for flat rows ``[N, F]`` when there are many of them (None: all
        at once). The mixing reads every layer's output ``[N, L, F]`` right after the bank writes it;
        in blocks of about :data:`ROW_BLOCK_ELEMENTS` it is still in cache (dense T=40, w=256,
        B=256: a training step 1.5x faster on this project's 2-core CPU)."""
        if y.device.type != "cpu" or y.dim() != 2:
            return None
        rows = max(MIN_BLOCK_ROWS, ROW_BLOCK_ELEMENTS // (self.bank.num_layers * y.shape[1]))
        return rows if y.shape[0] > rows else None

    def extra_repr(self) -> str:
        return (
            f"tasks={self.num_tasks}, depth={self.depth}, temperature={self.temperature}, "
            f"norm={self.norm!r}, depth_norm={self.depth_norm!r}"
        )


def resolve_depth(ordering: str, num_layers: int, depth: int | None) -> int:
    """The number of depths ``ordering`` applies over ``num_layers`` layers (per task, for single):
    ``depth`` itself, or ``num_layers`` when it is None. The learned orderings take any depth (K ≠ L:
    recurrent depth, Sec. 6), parallel ordering a multiple of ``num_layers`` (its layers cycled), the
    others exactly ``num_layers``; anything else raises. The one place this rule lives: the config
    check and the hard orderings' constructors call it (the learned ones take any depth >= 1)."""
    L = num_layers
    if depth is None or depth == L or ordering in LEARNED:
        return L if depth is None else depth
    if ordering == "parallel":
        if depth % L == 0:
            return depth
        raise ValueError(
            f"parallel ordering applies the {L} layers in order, cycled: depth must be a multiple of "
            f"the number of layers ({L}); got depth={depth}"
        )
    raise ValueError(
        f"{ordering} ordering applies each of the {L} layers exactly once, so depth must equal the "
        f"number of layers; got depth={depth}. Only the learned orderings ({', '.join(LEARNED)}) may "
        "use more or fewer depths than layers, and parallel ordering a multiple"
    )
