"""Two orderings that learn more than one fixed S per task: the work that followed soft ordering.

=============  ==================================================================  ==================
ordering       depth k of a row of task t applies                                  from
=============  ==================================================================  ==================
``gated``      ``Σ_j softmax(S[t, k] + G_{t,k}(pool(y^{k-1})))_j · F_j``: each      Mendez & Eaton,
               *input* gets its own mixture, from a per-task gate on the row        ICLR 2021 (soft
               itself; the gate starts at zero, so it starts as soft ordering       gating)
``routed``     one layer ``F_j``, ``j`` sampled per task and step from a            Rosenbaum et al.,
               Gumbel-softmax over ``S[t, k]`` (straight-through, annealed          ICLR 2018; AdaShare,
               temperature); evaluated with ``j = argmax S[t, k]``: a learned       NeurIPS 2020
               permuted ordering that runs one layer per depth
=============  ==================================================================  ==================

Both are :class:`~softorder.nn.SoftOrdering` with a different source of mixing weights, so they run
fused like it (every layer once per depth over the stacked rows of all tasks), with any bank and
``depth`` (more depths than layers: the recurrent reading of Sec. 6). A routed core in evaluation
runs only each task's chosen layer (one layer per depth, as parallel ordering does).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softorder.nn.banks import LayerBank
from softorder.nn.orderings import Rows, SoftOrdering


def pool_rows(y: Tensor, features: int) -> Tensor:
    """What a gate reads of a batch, ``[N, features]``: flat rows ``[N, F]`` as they are, tokens
    ``[N, seq, d]`` averaged over the sequence, images ``[N, c, H, W]`` averaged over H and W; a
    row of fewer than ``features`` values is their zero-padding (a conv core's ``c < C`` input)."""
    p = y if y.dim() == 2 else y.mean(1) if y.dim() == 3 else y.flatten(2).mean(2)
    if p.shape[1] > features:
        raise ValueError(f"the gate reads {features} pooled features per row, got {p.shape[1]} "
                         f"(rows of shape {tuple(y.shape[1:])}); pass gate_features={p.shape[1]}")
    return F.pad(p, (0, features - p.shape[1])) if p.shape[1] < features else p


class GateSpread:
    """Per task, depth and layer: the mean and standard deviation over rows of a gated core's
    mixing weights (:meth:`GatedOrdering.recording_spread`)."""

    def __init__(self, num_tasks: int, depth: int, layers: int) -> None:
        self.sum = torch.zeros(num_tasks, depth, layers, dtype=torch.float64)
        self.sq = torch.zeros_like(self.sum)
        self.count = torch.zeros(num_tasks, dtype=torch.float64)

    def add(self, k: int, task_ids: Tensor, w: Tensor) -> None:
        ids, w = task_ids.cpu(), w.double().cpu()
        self.sum[:, k].index_add_(0, ids, w)
        self.sq[:, k].index_add_(0, ids, w * w)
        if k == 0:
            self.count.index_add_(0, ids, torch.ones_like(ids, dtype=torch.float64))

    def summary(self) -> dict[str, Any]:
        """``gate_weights_mean`` and ``gate_weights_std`` (``[T][K][L]``, over the rows seen), and
        ``gate_rows`` per task; empty when no row was seen."""
        if not bool((self.count > 0).any()):
            return {}
        n = self.count.clamp(min=1)[:, None, None]
        mean = self.sum / n
        std = (self.sq / n - mean * mean).clamp(min=0).sqrt()
        return {"gate_weights_mean": mean.tolist(), "gate_weights_std": std.tolist(),
                "gate_rows": self.count.long().tolist()}


def _per_task_linear(x: Tensor, weight: Tensor, task_ids: Tensor) -> Tensor:
    """Row i of ``x`` (``[N, P]``) times its task's matrix ``weight[task_ids[i]]`` (``weight``:
    ``[T, P, Q]``), ``[N, Q]``: with fewer tasks than inputs P through every task's matrix at once
    (``[N, T, Q]``, then each row's), else through a gathered copy per row (``[N, P, Q]``) -- the
    smaller of the two intermediates."""
    T, P, Q = weight.shape
    if T < P:
        every = (x @ weight.permute(1, 0, 2).reshape(P, T * Q)).view(-1, T, Q)
        return every.gather(1, task_ids.view(-1, 1, 1).expand(-1, 1, Q)).squeeze(1)
    return torch.einsum("np,npq->nq", x, weight[task_ids])


class GatedOrdering(SoftOrdering):
    """Input-gated soft ordering (soft gating, Mendez & Eaton 2021): at depth k a row ``y`` of task
    t mixes the layers with ``softmax((S[t, k] + G_{t,k}(pool(y))) / temperature)`` (Eq. 7 with
    per-input weights). ``G_{t,k}`` is a linear map from the row's ``gate_features`` pooled features
    (:func:`pool_rows`) to L logits, or with ``gate_hidden > 0`` a ReLU MLP with that many hidden
    units. Its output layer starts at zero, so the ordering starts as soft ordering does (uniform
    mixture) and S stays the task's input-independent part. ``gate_features`` defaults to the
    bank's row width (``DenseBank.width``, ``ConvBank.channels``); a ModuleBank needs it given."""

    name = "gated"
    weights_note = ", the gate's input-independent part"

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, temperature: float = 1.0,
        norm: str = "none", *, gate_hidden: int = 0, gate_features: int | None = None,
        channels_last: bool = False, depth_norm: str = "none",
    ) -> None:
        super().__init__(bank, num_tasks, depth, temperature, norm, channels_last=channels_last,
                         depth_norm=depth_norm)
        features = gate_features or getattr(bank, "width", None) or getattr(bank, "channels", None)
        if not features:
            raise ValueError(
                f"gated ordering over a {type(bank).__name__} needs gate_features: the size of a "
                "row's pooled features (the width of flat rows, d_model of tokens, channels of images)"
            )
        if gate_hidden < 0:
            raise ValueError(f"gate_hidden must be >= 0 (0: a linear gate), got {gate_hidden}")
        T, K, L = num_tasks, self.depth, bank.num_layers
        self.gate_features, self.gate_hidden = int(features), gate_hidden
        width = gate_hidden or self.gate_features
        if gate_hidden:  # [T, K, P, H]: nn.Linear's default initialisation, per task and depth
            bound = 1.0 / math.sqrt(self.gate_features)
            hidden = torch.empty(T, K, self.gate_features, gate_hidden).uniform_(-bound, bound)
            self.gate_in = nn.Parameter(hidden)
            self.gate_in_bias = nn.Parameter(torch.zeros(T, K, gate_hidden))
        self.gate_out = nn.Parameter(torch.zeros(T, K, width, L))  # zero: starts as soft ordering
        self._spread: GateSpread | None = None

    def gate(self, k: int, y: Tensor, task_ids: Tensor) -> Tensor:
        """``G_{t,k}(pool(y))`` of each row, ``[N, L]``: the gate logits added to ``S[t, k]``."""
        h = pool_rows(y, self.gate_features).to(self.gate_out.dtype)  # [N, P]
        if self.gate_hidden:
            h = F.relu(_per_task_linear(h, self.gate_in[:, k], task_ids) + self.gate_in_bias[task_ids, k])
        return _per_task_linear(h, self.gate_out[:, k], task_ids)

    def mixing(self, task_ids: Tensor) -> Callable[[int, Tensor], Tensor]:
        return lambda k, y: self.depth_weights(k, y, task_ids)

    def depth_weights(self, k: int, y: Tensor, task_ids: Tensor) -> Tensor:
        """Each row's own mixture at depth k, ``[N, L]`` (``weights()`` is its input-independent
        part, ``softmax(S)``: what the logs show)."""
        w = torch.softmax((self.S[task_ids, k] + self.gate(k, y, task_ids)) / self.temperature, dim=-1)
        w = self.normalised(w)
        if self._spread is not None:
            self._spread.add(k, task_ids, w.detach())
        return w

    @contextlib.contextmanager
    def recording_summary(self) -> Iterator[dict[str, Any]]:
        """As :meth:`Ordering.recording_summary`, with the spread of the rows' weights
        (:meth:`GateSpread.summary`)."""
        with self.recording_spread() as spread, super().recording_summary() as seen:
            yield seen
        seen.update(spread.summary())

    @contextlib.contextmanager
    def recording_spread(self) -> Iterator[GateSpread]:
        """Inside the block, every forward adds each row's mixture to the yielded
        :class:`GateSpread`: how much the weights of one task vary across its inputs."""
        self._spread = GateSpread(self.num_tasks, self.depth, self.bank.num_layers)
        try:
            yield self._spread
        finally:
            self._spread = None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gate_features={self.gate_features}, gate_hidden={self.gate_hidden}"


@dataclass(frozen=True)
class Anneal:
    """The Gumbel-softmax temperature of a routed core: ``start`` at step 0, falling geometrically
    to ``end`` at step ``steps``, then ``end``."""

    start: float = 2.0
    end: float = 0.1
    steps: int = 1000

    def __post_init__(self) -> None:
        if not (self.start > 0 and self.end > 0 and self.steps >= 1):
            raise ValueError(f"the routing temperature needs start > 0, end > 0 and steps >= 1; got {self}")

    def at(self, step: Tensor, steps: Tensor | None = None) -> Tensor:
        """The temperature at ``step`` (a tensor: computed on its device, no host read), annealed
        over ``steps`` (default :attr:`steps`)."""
        frac = (step.float() / (self.steps if steps is None else steps.float())).clamp(max=1.0)
        return self.start * (self.end / self.start) ** frac


class RoutedOrdering(SoftOrdering):
    """Learned hard routing (Routing Networks, Rosenbaum et al. 2018; the Gumbel-softmax policy of
    AdaShare, Sun et al. 2020): each task applies ONE layer per depth. In training, each step draws
    for every task and depth ``one_hot(argmax(S[t, k] + g))`` with Gumbel noise ``g``, and passes
    S the gradient of ``softmax((S[t, k] + g) / τ)`` (straight-through), τ annealed by ``anneal``
    (:class:`Anneal`) over the optimizer steps, counted in the ``route_step`` buffer by
    :meth:`advance` (softorder's trainers call it after every step; call it yourself in your own
    loop). The forward pass changes no state, so recomputing it (activation checkpointing, several
    calls per step) gives the same routes and gradients. In evaluation each task takes
    ``argmax S[t, k]``, and in a :class:`~softorder.nn.MultiTaskNet` whose tasks' rows come in
    equal blocks the core runs only that layer (a learned permuted ordering, one layer per depth).

    ``choice`` (``[T, K]``) holds ``argmax S`` after the last step and ``settled_step`` (``[T]``)
    the step after which task t's choice has not changed: where the router committed.
    ``anneal_steps`` keeps the annealing length in the state_dict, so that a run resumed with more
    steps continues the schedule it started (the config's ``route_anneal`` is a fraction of them).
    """

    name = "routed"
    route_step: Tensor
    choice: Tensor
    settled_step: Tensor
    anneal_steps: Tensor

    def __init__(
        self, bank: LayerBank, num_tasks: int, depth: int | None = None, anneal: Anneal | None = None, *,
        channels_last: bool = False, depth_norm: str = "none",
    ) -> None:
        super().__init__(bank, num_tasks, depth, channels_last=channels_last, depth_norm=depth_norm)
        self.anneal = anneal or Anneal()
        self.register_buffer("route_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("choice", torch.zeros(num_tasks, self.depth, dtype=torch.long))
        self.register_buffer("settled_step", torch.zeros(num_tasks, dtype=torch.long))
        self.register_buffer("anneal_steps", torch.tensor(self.anneal.steps))

    @classmethod
    def weights_label(cls, temperature: float = 1.0, norm: str = "none") -> str:
        return "routing probabilities (softmax(S/τ), τ annealed)"

    def temperature_now(self) -> Tensor:
        """τ at the current step (:class:`Anneal`, over ``anneal_steps``)."""
        return self.anneal.at(self.route_step, self.anneal_steps)

    def weights(self) -> Tensor:
        """The routing probabilities ``softmax(S / τ)``, ``[T, K, L]`` (what the logs and reports
        show; the choice in evaluation is their argmax)."""
        return torch.softmax(self.S / self.temperature_now(), dim=-1)

    def sample(self) -> Tensor:
        """One training step's route of every task, ``[T, K, L]``: one-hot in value, with the
        gradient of the Gumbel-softmax sample ``softmax((S + g) / τ)`` (straight-through)."""
        g = -torch.empty_like(self.S).exponential_().log()  # Gumbel(0, 1)
        soft = torch.softmax((self.S + g) / self.temperature_now(), dim=-1)
        hard = F.one_hot(soft.argmax(-1), self.bank.num_layers).to(soft.dtype)
        return hard + soft - soft.detach()

    def row_weights(self, task_ids: Tensor) -> Tensor:
        if not self.training:
            return F.one_hot(self.S.argmax(-1), self.bank.num_layers).to(self.S.dtype)[task_ids]
        return self.sample()[task_ids]

    def advance_state(self, state: dict[str, Tensor]) -> None:
        """Count a step and note whether each task's choice (``argmax S``) changed, in place, on
        device (no host read); ``state`` may carry leading trial dimensions."""
        step = state["route_step"]
        step.add_(1)
        now = state["S"].argmax(-1)  # [..., T, K]
        changed = (now != state["choice"]).any(-1)  # [..., T]
        state["settled_step"].copy_(torch.where(changed, step.unsqueeze(-1), state["settled_step"]))
        state["choice"].copy_(now)

    def forward(self, y: Tensor, rows: Rows) -> Tensor:
        if self.training or not rows.uniform:
            return super().forward(y, rows)
        order = self.S.argmax(-1)[self.bank.index_tensor(rows.tasks, y.device)]  # [blocks, K]
        for k in range(self.depth):  # only the chosen layer: one per depth, as a hard ordering
            y = self._depth_done(self.bank.blocks(self.depth_input(y), order[:, k]))
        return y

    def summary(self) -> dict[str, Any]:
        """What ``result.json`` records of the router: the layer each task chose at each depth, and
        the step from which each task's choice stopped changing."""
        return {"route_choice": self.S.argmax(-1).tolist(), "route_settled_step": self.settled_step.tolist()}

    def extra_repr(self) -> str:
        a = self.anneal
        return (f"tasks={self.num_tasks}, depth={self.depth}, depth_norm={self.depth_norm!r}, "
                f"tau={a.start}->{a.end} over {int(self.anneal_steps)} steps")
