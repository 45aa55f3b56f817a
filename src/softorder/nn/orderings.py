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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from softorder.nn.banks import LayerBank

ORDERINGS = ("single", "parallel", "permuted", "soft")
SOFT_NORMS = ("none", "l2")


@dataclass(frozen=True)
class Rows:
    """Rows ``sum(counts[:i]) .. sum(counts[:i+1])`` of a stacked batch belong to ``tasks[i]``."""

    tasks: tuple[int, ...]
    counts: tuple[int, ...]
    _index: dict[torch.device, Tensor] = field(default_factory=dict, compare=False, repr=False)

    @property
    def uniform(self) -> bool:
        return len(set(self.counts)) <= 1

    def index(self, device: torch.device) -> Tensor:
        """Task id of every row, ``[N]``."""
        if device not in self._index:  # built on the CPU: no device sync for its unknown length
            index = torch.repeat_interleave(torch.tensor(self.tasks), torch.tensor(self.counts))
            self._index[device] = index.to(device, non_blocking=True)
        return self._index[device]


def soft_order_step(outputs: Tensor, weights: Tensor) -> Tensor:
    """One depth of soft ordering (Eq. 7): ``y^k = Σ_j s_j · F_j(y^{k-1})``.

    ``outputs`` holds every layer's output ``F_j(y^{k-1})`` as ``[N, L, *features]`` and
    ``weights`` the mixing weights ``softmax(S[t, k])`` of each row's task as ``[N, L]``.
    """
    return (weights.view(*weights.shape, *[1] * (outputs.dim() - 2)) * outputs).sum(1)


class Ordering(nn.Module):
    """An ordered core: a layer bank applied over ``depth`` depths for ``num_tasks`` tasks."""

    name: str = ""

    def __init__(self, bank: LayerBank, num_tasks: int, depth: int) -> None:
        super().__init__()
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be at least 1, got {num_tasks}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.bank, self.num_tasks, self.depth = bank, num_tasks, depth
        self._trace: list[Tensor] | None = None

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
    """Each task applies one layer per depth: ``y^k = F_{order[t, k]}(y^{k-1})`` (Eq. 2, 3)."""

    order: Tensor

    def __init__(self, bank: LayerBank, num_tasks: int, depth: int, order: Tensor) -> None:
        super().__init__(bank, num_tasks, depth)
        self.register_buffer("order", order.long())  # [T, K]; in the state_dict
        self._order_list: list[list[int]] = self.order.tolist()
        # True: read the layers from the ``order`` buffer, never from the host copy, so that
        # ``torch.func.vmap`` over stacked trials gives each trial its own orders (train/trials.py).
        self.orders_on_device = False

    def layer_at(self, task: int, depth: int) -> int:
        """Index into the bank of the layer task ``task`` applies at ``depth``."""
        return self._order_list[task][depth]

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        if self.orders_on_device:
            return self._forward_on_device(y, rows)
        for k in range(self.depth):
            layers = [self._order_list[t][k] for t in rows.tasks]
            y = self._depth_done(self.bank.segments(y, layers, rows.counts))
        return y

    def _forward_on_device(self, y: Tensor, rows: Rows) -> Tensor:
        if not rows.uniform:
            raise ValueError(
                f"orders_on_device needs equal row counts per task, got {rows.counts}; "
                "give every task the same batch size"
            )
        order = self.order[self.bank.index_tensor(rows.tasks, y.device)]  # [S, K]: each block's orders
        for k in range(self.depth):
            y = self._depth_done(self.bank.blocks(y, order[:, k]))
        return y

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._order_list = self.order.tolist()


class ParallelOrdering(HardOrdering):
    """Classic deep MTL: depth k applies layer k for every task (Eq. 2)."""

    name = "parallel"

    def __init__(self, bank: LayerBank, num_tasks: int, depth: int | None = None) -> None:
        depth = _hard_depth(bank, depth, "parallel")
        super().__init__(bank, num_tasks, depth, torch.arange(depth).repeat(num_tasks, 1))

    @property
    def shares_path(self) -> bool:
        return True

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        for k in range(self.depth):
            y = self._depth_done(self.bank.layer(k, y))
        return y


class PermutedOrdering(HardOrdering):
    """Each task applies the shared layers in its own fixed random order (Eq. 3). The orders are
    drawn from ``seed`` at construction and kept in the state_dict."""

    name = "permuted"

    def __init__(self, bank: LayerBank, num_tasks: int, depth: int | None = None, seed: int = 0) -> None:
        depth = _hard_depth(bank, depth, "permuted")
        gen = torch.Generator().manual_seed(seed)
        order = torch.stack([torch.randperm(depth, generator=gen) for _ in range(num_tasks)])
        super().__init__(bank, num_tasks, depth, order)


class SingleTaskOrdering(HardOrdering):
    """No sharing: task t owns layers ``t*L .. t*L+L-1`` of a bank with ``T*L`` layers, applied in
    parallel order. The single-task baseline with an equivalent core (Sec. 4)."""

    name = "single"

    def __init__(self, bank: LayerBank, num_tasks: int, depth: int | None = None) -> None:
        if bank.num_layers % num_tasks:
            raise ValueError(
                f"single-task ordering needs a bank of num_tasks*L layers; got {bank.num_layers} "
                f"layers for {num_tasks} tasks"
            )
        per_task = bank.num_layers // num_tasks
        if depth is not None and depth != per_task:
            raise ValueError(
                f"single-task ordering applies each task's {per_task} layers once, so depth must "
                f"equal the number of layers ({per_task}), got depth={depth}"
            )
        order = torch.arange(num_tasks)[:, None] * per_task + torch.arange(per_task)
        super().__init__(bank, num_tasks, per_task, order)

    @property
    def num_layers(self) -> int:
        return self.bank.num_layers // self.num_tasks


class SoftOrdering(Ordering):
    """Soft layer ordering (Sec. 3.3, Eq. 7). ``S[t, k, j]`` scales layer j at depth k for task t;
    the weights ``softmax(S[t, k] / temperature)`` sum to one over layers. S starts at zero, i.e.
    every layer weighted equally, and is learned with the layers. ``depth`` may exceed the number of
    layers (layers reused across more depths: the recurrent-like extension of Sec. 6)."""

    name = "soft"

    def __init__(
        self,
        bank: LayerBank,
        num_tasks: int,
        depth: int | None = None,
        temperature: float = 1.0,
        norm: str = "none",
    ) -> None:
        super().__init__(bank, num_tasks, bank.num_layers if depth is None else depth)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if norm not in SOFT_NORMS:
            raise ValueError(f"unknown soft-ordering norm {norm!r}; choose one of {', '.join(SOFT_NORMS)}")
        self.temperature, self.norm = temperature, norm
        self.S = nn.Parameter(torch.zeros(num_tasks, self.depth, bank.num_layers))

    def weights(self) -> Tensor:
        """The mixing weights over layers, ``[T, K, L]``: ``softmax(S / temperature)`` (Eq. 7), or
        with ``norm="l2"`` that divided by its L2 norm, so that a mixture of L independent layers
        keeps the scale of one layer (uniform S: x sqrt(L)) while a one-hot S is unchanged."""
        w = torch.softmax(self.S / self.temperature, dim=-1)
        return w / w.norm(dim=-1, keepdim=True) if self.norm == "l2" else w

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        w = self.weights()[rows.index(y.device)]  # [N, K, L]: each row gets its task's S
        for k in range(self.depth):
            y = self._depth_done(soft_order_step(self.bank(y), w[:, k]))
        return y

    def extra_repr(self) -> str:
        return (
            f"tasks={self.num_tasks}, depth={self.depth}, temperature={self.temperature}, norm={self.norm!r}"
        )


def _hard_depth(bank: LayerBank, depth: int | None, name: str) -> int:
    if depth is not None and depth != bank.num_layers:
        raise ValueError(
            f"{name} ordering applies each of the {bank.num_layers} layers exactly once, so depth "
            f"must equal the number of layers; got depth={depth}. Only 'soft' ordering may use "
            f"more or fewer depths than layers"
        )
    return bank.num_layers


def make_ordering(
    name: str,
    bank_factory: Any,
    num_tasks: int,
    num_layers: int,
    depth: int | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    norm: str = "none",
) -> Ordering:
    """Build an ordering by name; ``bank_factory(n)`` must return a bank of ``n`` layers."""
    if name == "soft":
        return SoftOrdering(bank_factory(num_layers), num_tasks, depth, temperature, norm)
    if name == "parallel":
        return ParallelOrdering(bank_factory(num_layers), num_tasks, depth)
    if name == "permuted":
        return PermutedOrdering(bank_factory(num_layers), num_tasks, depth, seed=seed)
    if name == "single":
        return SingleTaskOrdering(bank_factory(num_tasks * num_layers), num_tasks, depth)
    raise ValueError(f"unknown ordering {name!r}; choose one of {', '.join(ORDERINGS)}")


def orders(ordering: Ordering) -> Sequence[Sequence[int]] | None:
    """The fixed layer order of each task for hard orderings, None for soft."""
    return ordering._order_list if isinstance(ordering, HardOrdering) else None
