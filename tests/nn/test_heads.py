"""The task-head interface and its loss protocol (nn/heads.py, the decoders D_t of Sec. 3.3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softorder.nn import Decoders, TaskHeads
from softorder.nn.orderings import Rows

ABSTRACT = ("decode", "loss", "row_losses", "predict", "check_target")


class _Mean(TaskHeads):
    """A complete toy head: the mean of the row, L1 loss."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__([1] * num_tasks)
        self.layers = nn.ModuleList(nn.Identity() for _ in range(num_tasks))

    def decode(self, task: int, y: Tensor) -> Tensor:
        return y.mean(1)

    def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        return self.row_losses(task, logits, target).mean()

    def row_losses(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        return (logits - target).abs()

    def predict(self, task: int, logits: Tensor) -> Tensor:
        return logits

    def check_target(self, task: int, target: Tensor) -> None:
        pass


def test_task_heads_declare_the_loss_protocol() -> None:
    assert TaskHeads.__abstractmethods__ == frozenset(ABSTRACT)
    assert not TaskHeads.standard_loss and Decoders.standard_loss
    with pytest.raises(TypeError, match="abstract"):
        TaskHeads([2])  # type: ignore[abstract]
    head = _Mean(2)
    y, z = torch.randn(6, 3), torch.randn(6)
    rows = Rows((0, 1), (2, 4))
    out = head(y, rows)
    assert [o.shape for o in out] == [(2,), (4,)]
    torch.testing.assert_close(torch.cat(out), y.mean(1))
    assert [o.shape for o in head.forward_shared(y, [1, 0])] == [(6,), (6,)]
    losses = head.losses([0, 1], [z[:2], z[2:]], [torch.zeros(2), torch.zeros(4)])
    torch.testing.assert_close(losses, torch.stack([z[:2].abs().mean(), z[2:].abs().mean()]))


@pytest.mark.parametrize("missing", ABSTRACT)
def test_a_head_missing_a_method_cannot_be_built(missing: str) -> None:
    methods = {name: getattr(_Mean, name) for name in ABSTRACT if name != missing}
    partial = type("Partial", (TaskHeads,), {"__init__": _Mean.__init__, **methods})
    with pytest.raises(TypeError, match=missing):
        partial(2)


def test_a_decoders_subclass_with_its_own_loss_must_declare_standard_loss() -> None:
    with pytest.raises(TypeError, match="declare standard_loss"):

        class Sneaky(Decoders):
            def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
                return 2 * super().loss(task, logits, target)

    class Doubled(Decoders):
        standard_loss = False

        def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
            return 2 * super().loss(task, logits, target)

    torch.manual_seed(0)
    dec = Doubled(4, [3, 3])
    z = [torch.randn(5, 3), torch.randn(5, 3)]
    y = [torch.randint(0, 3, (5,)), torch.randint(0, 3, (5,))]
    want = torch.stack([2 * F.cross_entropy(zt, yt) for zt, yt in zip(z, y)])
    torch.testing.assert_close(dec.losses([0, 1], z, y), want)  # its own loss, not the fast path
