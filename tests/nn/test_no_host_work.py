"""Once a batch layout has been seen, the forward and backward of a training step make no tensor
from host values, copy nothing to the device and read nothing back (issue 22): counted on the CPU
with a dispatch mode, so that a per-step host-to-device copy or sync (which would also stop
CUDA-graph capture) cannot silently come back. (Adam's own step reads its step count on the CPU;
on CUDA ``Adam(capturable=True)`` does not.)"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import softorder as so
from softorder.nn.blocks import ResidualMLP

#: Ops that make a tensor from host values, read a value back, or size a result by its data.
HOST_WORK = ("aten.lift_fresh", "aten._local_scalar_dense", "aten.repeat_interleave", "aten.nonzero",
             "aten._to_copy")


class Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _host_work(step: Any) -> dict[str, int]:
    step()  # the first step of a layout may build what later steps reuse
    with Count() as c:
        step()
    return {k: v for k, v in c.ops.items() if k in HOST_WORK}


@pytest.mark.parametrize("ordering", ["single", "parallel", "permuted", "soft"])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_a_training_step_does_no_host_work(ordering: str, kind: str) -> None:
    torch.manual_seed(0)
    if kind == "dense":
        net: so.MultiTaskNet = so.dense_net(6, [2, 3, 4], width=8, ordering=ordering, depth_norm="rms")
        xs = [torch.randn(5, 6) for _ in range(3)]
    else:
        net = so.conv_net([2, 3, 4], image_shape=(1, 16, 16), channels=4, padding=1, ordering=ordering)
        xs = [torch.rand(5, 1, 16, 16) for _ in range(3)]
    ys = [torch.randint(0, c, (5,)) for c in (2, 3, 4)]

    def step() -> None:
        net.zero_grad(set_to_none=True)
        net.losses(net(xs), ys, check=False).sum().backward()

    assert _host_work(step) == {}


def test_the_drop_in_layer_does_no_host_work_for_an_int_task() -> None:
    layer = so.SoftOrder([ResidualMLP(6, hidden=8) for _ in range(3)], 2)
    x = torch.randn(4, 6)
    assert _host_work(lambda: layer(x, 1).sum().backward()) == {}
