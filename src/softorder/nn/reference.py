"""A readable reference: Eq. 7 written out with loops over task, depth and layer.

It uses the very parameters of a :class:`~softorder.nn.network.MultiTaskNet`, so the fused model
can be checked against it, outputs and gradients alike. It is slow on purpose (it is what most
public code does) and is the "loop" baseline of ``benchmarks/bench_core.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from torch import Tensor

from softorder.nn.network import Inputs, MultiTaskNet
from softorder.nn.orderings import HardOrdering, SoftOrdering


def reference_forward(net: MultiTaskNet, x: Inputs, tasks: Sequence[int] | None = None) -> list[Tensor]:
    """Task by task: ``y^0 = E_t(x_t)``; at each depth k
    ``y^k = Σ_j softmax(S[t, k])_j · F_j(y^{k-1})`` (soft, Eq. 7) or ``y^k = F_{order[t, k]}(y^{k-1})``
    (parallel Eq. 2, permuted Eq. 3, single-task); finally ``D_t(y^K)``."""
    tasks = net.check_tasks(tasks)
    xs = [x] * len(tasks) if isinstance(x, Tensor) else list(x)
    core, bank = net.core, net.core.bank
    outputs = []
    for t, x_t in zip(tasks, xs):
        y = net.encoders.encode(t, x_t)
        for k in range(core.depth):
            if isinstance(core, SoftOrdering):
                s = core.weights()[t, k]
                y = cast(Tensor, sum(s[j] * bank.layer(j, y) for j in range(bank.num_layers)))
            else:
                assert isinstance(core, HardOrdering)
                y = bank.layer(core.layer_at(t, k), y)
        outputs.append(net.decoders.decode(t, y))
    return outputs
