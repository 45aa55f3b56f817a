"""The layer-behaviour experiment's regression head implements the task-head protocol (Sec. 5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softorder.experiments.layer_behaviour import GAPDecoders, build_net
from softorder.nn import TaskHeads
from softorder.nn.orderings import Rows


def test_gap_decoders_satisfy_the_task_head_protocol() -> None:
    dec = GAPDecoders(3)
    assert isinstance(dec, TaskHeads) and not dec.standard_loss
    assert dec.num_classes == [1, 1, 1] and dec.binary == [False] * 3 and len(dec.layers) == 3
    assert not list(dec.parameters())  # parameter-free (global average pooling)
    y = torch.rand(6, 5)
    out = dec(y, Rows((0, 2), (2, 4)))
    torch.testing.assert_close(torch.cat(out), y.mean(1))
    torch.testing.assert_close(dec.forward_shared(y, [1])[0], y.mean(1))
    target = torch.rand(6)
    z = dec.decode(0, y)
    torch.testing.assert_close(dec.row_losses(0, z, target), (z - target) ** 2)
    torch.testing.assert_close(dec.loss(0, z, target), F.mse_loss(z, target))
    torch.testing.assert_close(dec.losses([0, 1], [z[:3], z[3:]], [target[:3], target[3:]]),
                               torch.stack([F.mse_loss(z[:3], target[:3]), F.mse_loss(z[3:], target[3:])]))
    assert dec.predict(0, torch.tensor([-1.0, 0.5, 2.0])).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="brightness targets must be floats"):
        dec.check_target(0, torch.zeros(3, dtype=torch.long))


def test_the_layer_behaviour_net_trains_on_the_head_losses() -> None:
    torch.manual_seed(0)
    net = build_net(2, 8, 3)
    coords = torch.rand(10, 2)
    targets = [torch.rand(10), torch.rand(10)]
    losses = net.losses(net(coords), targets)
    want = torch.stack([F.mse_loss(z, t) for z, t in zip(net(coords), targets)])
    torch.testing.assert_close(losses, want)
