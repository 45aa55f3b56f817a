"""A readable reference: Eq. 7 written out with loops over task, depth and layer.

It uses the very parameters of a :class:`~softorder.nn.network.MultiTaskNet` (or of a
:class:`~softorder.nn.soft_order.SoftOrder` layer), so the fused model can be checked against it,
outputs and gradients alike. It is slow on purpose (it is what most
public code does) and is the "loop" baseline of ``scripts/bench_core.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from softorder.nn.banks import ConvBank, LayerBank
from softorder.nn.heads import pad_channels
from softorder.nn.learned import GatedOrdering, RoutedOrdering
from softorder.nn.network import Inputs, MultiTaskNet
from softorder.nn.orderings import RMS_EPS, HardOrdering, Ordering, SoftOrdering
from softorder.nn.soft_order import SoftOrder


def reference_forward(
    net: MultiTaskNet, x: Inputs, tasks: Sequence[int] | None = None, routes: Tensor | None = None
) -> list[Tensor]:
    """Task by task: ``y^0 = E_t(x_t)``; at each depth k
    ``y^k = Σ_j softmax(S[t, k])_j · F_j(y^{k-1})`` (soft, Eq. 7), the same with each row's own gated
    weights (gated), ``F_{argmax S[t, k]}`` (routed, evaluation) or ``Σ_j routes[t, k, j] · F_j``
    (routed, training: the one-hot routes ``core.sample()`` drew), or ``y^k = F_{order[t, k]}(y^{k-1})``
    (parallel Eq. 2, permuted Eq. 3, single-task); finally ``D_t(y^K)``. With ``depth_norm="rms"``
    each depth first scales each row of ``y^{k-1}`` to unit RMS."""
    tasks = net.check_tasks(tasks)
    xs = [x] * len(tasks) if isinstance(x, Tensor) else list(x)
    core, bank = net.core, net.core.bank
    outputs = []
    for t, x_t in zip(tasks, xs):
        y = net.encoders.encode(t, x_t)
        if isinstance(bank, ConvBank):  # y^0: the images zero-padded to the core's C channels
            y = pad_channels(y, bank.channels)
        for k in range(core.depth):
            y = _depth(core, t, k, _unit_rms(y) if core.depth_norm == "rms" else y, routes)
        outputs.append(net.decoders.decode(t, y))
    return outputs


def _depth(core: Ordering, t: int, k: int, y: Tensor, routes: Tensor | None) -> Tensor:
    """Depth k of task t on the rows ``y`` (already scaled as ``depth_norm`` says): Eq. 7 with the
    task's weights (soft), each row's own (gated), the sampled ``routes`` (routed, training) or one
    layer (routed in evaluation: ``argmax S``; the hard orderings)."""
    bank = core.bank
    if isinstance(core, GatedOrdering):
        return torch.cat([_mix(bank, _gate_weights(core, t, k, row), row) for row in y.split(1)])
    if isinstance(core, RoutedOrdering) and not core.training:
        return bank.layer(int(core.S[t, k].argmax()), y)
    if isinstance(core, RoutedOrdering):
        if routes is None:
            raise ValueError("a routed core in training mode needs the routes its forward drew")
        return _mix(bank, routes[t, k], y)
    if isinstance(core, SoftOrdering):
        return _mix(bank, core.weights()[t, k], y)
    assert isinstance(core, HardOrdering)
    return bank.layer(core.layer_at(t, k), y)


def _mix(bank: LayerBank, s: Tensor, y: Tensor) -> Tensor:
    """Eq. 7: ``Σ_j s_j · F_j(y)``."""
    return cast(Tensor, sum(s[j] * bank.layer(j, y) for j in range(bank.num_layers)))


def _gate_weights(core: GatedOrdering, t: int, k: int, row: Tensor) -> Tensor:
    """One row's mixture at depth k (soft gating): ``softmax((S[t, k] + G_{t,k}(pool(row))) / τ)``,
    the gate written out: the row's features (averaged over positions), zero-padded to the gate's
    width, through the task's hidden ReLU layer (if any) and output map."""
    p = row.flatten(2).mean(2) if row.dim() == 4 else row.mean(1) if row.dim() == 3 else row
    p = torch.cat([p[0], p.new_zeros(core.gate_features - p.shape[1])])
    if core.gate_hidden:
        p = torch.relu(p @ core.gate_in[t, k] + core.gate_in_bias[t, k])
    s = torch.softmax((core.S[t, k] + p @ core.gate_out[t, k]) / core.temperature, dim=0)
    return s / s.norm() if core.norm == "l2" else s


def reference_soft_order(
    layer: SoftOrder, x: Tensor, task: int | Tensor, routes: Tensor | None = None
) -> Tensor:
    """Row by row: ``y^0 = x_i``; at each depth k ``y^k = Σ_j softmax(S[t_i, k])_j · F_j(y^{k-1})``
    (Eq. 7) with ``t_i`` row i's task and ``F_j`` block j of the layer's bank (``y^{k-1}`` scaled to
    unit RMS first with ``depth_norm="rms"``), with the row's gated weights (gated) or its task's
    route (routed: ``routes`` in training, as in :func:`reference_forward`); returns ``y^K``."""
    bank, core = layer.bank, layer.core
    rows = []
    for i, t in enumerate(layer.task_ids(task, x).tolist()):
        y = x[i : i + 1]
        if isinstance(bank, ConvBank):  # an image of fewer channels stands for its zero-padding
            y = pad_channels(y, bank.channels)
        for k in range(layer.depth):
            y = _depth(core, t, k, _unit_rms(y) if core.depth_norm == "rms" else y, routes)
        rows.append(y)
    return torch.cat(rows)


def _unit_rms(y: Tensor) -> Tensor:
    """Each row of ``y`` divided by its root mean square over its features, one row at a time: what
    ``depth_norm="rms"`` gives each depth to read, written out."""
    return torch.stack([row / (row.pow(2).mean() + RMS_EPS).sqrt() for row in y])
