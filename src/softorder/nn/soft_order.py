"""Soft layer ordering of any blocks as one drop-in layer (Sec. 3.3, Eq. 7).

``SoftOrder(blocks, num_tasks)`` puts the blocks in a fused :class:`~softorder.nn.ModuleBank` and
runs :class:`~softorder.nn.SoftOrdering` over them: at depth k a row of task t computes

    y^k = Σ_j softmax(S[t, k, :])_j · F_j(y^{k-1})          (Eq. 7, :func:`soft_order_step`)

``forward(x, task)`` takes ``task`` as one int for the whole batch or as a long tensor of per-row
task ids in any order, so it goes inside any model (around the encoder blocks of a transformer,
say) with its own encoders and heads around it. :func:`softorder.nn.reference_soft_order` is its
readable reference (a loop over rows, depths and blocks).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from softorder.nn.banks import LayerBank
from softorder.nn.learned import Anneal
from softorder.nn.make import make_ordering
from softorder.nn.module_bank import ModuleBank
from softorder.nn.orderings import LEARNED, SoftOrdering


class SoftOrder(nn.Module):
    """Soft ordering (Sec. 3.3, Eq. 7) of ``blocks`` for ``num_tasks`` tasks over ``depth`` depths
    (default: one per block; more or fewer are allowed, Sec. 6). ``blocks`` are L modules of one
    structure whose output can be fed back in (see :class:`~softorder.nn.ModuleBank`; their
    weights are copied into the bank), or a ready :class:`~softorder.nn.LayerBank`.

    ``S`` (``[num_tasks, depth, L]``, zeros at initialisation: every block weighted equally) is
    learned with the blocks. ``norm="l2"`` divides the mixing weights by their L2 norm and
    ``temperature`` divides S before the softmax (:class:`~softorder.nn.SoftOrdering`);
    ``depth_norm="rms"`` gives every depth's input unit RMS per row (:func:`~softorder.nn.rms_normalise`).

    ``ordering="gated"`` gives each input its own mixture from a per-task gate on its features
    (``gate_features``: the width of a pooled row, e.g. d_model; ``gate_hidden``), ``"routed"``
    learns one block per task and depth with a Gumbel-softmax (``anneal``): see
    :mod:`softorder.nn.learned`.
    """

    def __init__(
        self, blocks: Sequence[nn.Module] | LayerBank, num_tasks: int, depth: int | None = None,
        norm: str = "none", *, temperature: float = 1.0, depth_norm: str = "none", ordering: str = "soft",
        gate_hidden: int = 0, gate_features: int | None = None, anneal: Anneal | None = None,
    ) -> None:
        super().__init__()
        if ordering not in LEARNED:
            raise ValueError(f"SoftOrder: ordering must be one of {', '.join(LEARNED)} (the orderings that "
                             f"learn S), got {ordering!r}; hard orderings need no drop-in layer")
        bank = blocks if isinstance(blocks, LayerBank) else ModuleBank(blocks)
        core = make_ordering(ordering, lambda n: bank, num_tasks, bank.num_layers, depth,
                             temperature=temperature, norm=norm, depth_norm=depth_norm,
                             gate_hidden=gate_hidden, gate_features=gate_features, anneal=anneal)
        assert isinstance(core, SoftOrdering)
        self.core = core

    @property
    def S(self) -> nn.Parameter:
        """The learned scalings ``[num_tasks, depth, L]`` (Eq. 7)."""
        return self.core.S

    @property
    def bank(self) -> LayerBank:
        """The fused blocks; ``bank.module(j)`` gives block j back (a :class:`ModuleBank`)."""
        return self.core.bank

    @property
    def num_tasks(self) -> int:
        return self.core.num_tasks

    @property
    def depth(self) -> int:
        return self.core.depth

    def advance(self) -> None:
        """Call after every optimizer step: a routed layer counts the steps that anneal its
        temperature (:meth:`~softorder.nn.Ordering.advance`); the others have nothing to do."""
        self.core.advance()

    def weights(self) -> Tensor:
        """The mixing weights ``[T, K, L]``: ``softmax(S / temperature)`` (L2-normalised: ``norm="l2"``)."""
        return self.core.weights()

    def forward(self, x: Tensor, task: int | Tensor) -> Tensor:
        """Eq. 7 over every depth on the rows of ``x`` (``[N, *features]``); row i belongs to task
        ``task`` (an int) or ``task[i]`` (a long tensor ``[N]``, any order). Returns ``y^K``."""
        ids = self.task_ids(task, x)
        self.core.bank.check_input(x, "SoftOrder input", self.depth)
        return self.core.forward_ids(x, ids)

    def task_ids(self, task: int | Tensor, x: Tensor) -> Tensor:
        """``task`` as the long tensor ``[N]`` of each row's task id on ``x``'s device, checked
        (the range of a tensor on an accelerator is left to the device: no host sync)."""
        n, top = x.shape[0], self.num_tasks - 1
        if isinstance(task, numbers.Integral) and not isinstance(task, bool):
            if not 0 <= int(task) <= top:
                raise ValueError(f"SoftOrder: task id {task} is out of range: the layer has tasks 0..{top}")
            return torch.full((n,), int(task), dtype=torch.long, device=x.device)
        if not isinstance(task, Tensor) or not _is_integer(task):
            what = task.dtype if isinstance(task, Tensor) else type(task).__name__
            raise ValueError(f"SoftOrder: task must be an int or a LongTensor of row task ids, not {what}")
        if task.shape != (n,):
            raise ValueError(
                f"SoftOrder: got task ids of shape {tuple(task.shape)} for {n} rows; give one id per row"
            )
        if task.device.type == "cpu" and n and not bool(((task >= 0) & (task <= top)).all()):
            bad = int(task[(task < 0) | (task > top)][0])
            raise ValueError(f"SoftOrder: task id {bad} is out of range: the layer has tasks 0..{top}")
        return task.to(x.device, torch.long, non_blocking=True)


def _is_integer(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)
