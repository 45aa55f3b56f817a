"""Speed options of a training run, applied by the trainer around the plain ``MultiTaskNet``:

* ``channels_last: true`` — the conv core runs on NHWC ("channels last") tensors, the layout the
  GPU's tensor-core convolutions prefer. Off by default (it has not been timed against NCHW on
  every GPU; measure with ``softorder bench --device cuda --channels-last``); ignored by dense nets.
* several processes under torchrun — ``DistributedDataParallel``: every step all-reduces the
  gradients of the shared layers, S, encoders and decoders.
* ``compile: true`` — ``torch.compile`` of the (possibly DDP-wrapped) model.

The trainer keeps the unwrapped net for everything but the training forward (losses, evaluation,
``mixing_weights()``, state dicts), so checkpoints look the same with or without these options.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from softorder.nn.network import MultiTaskNet
from softorder.train import distributed
from softorder.train.config import Config


def use_channels_last(net: MultiTaskNet) -> bool:
    """Make the conv core run channels-last (:meth:`softorder.nn.orderings.Ordering.use_channels_last`).
    Returns False (and changes nothing) when the core is not an image bank."""
    return net.core.use_channels_last()


def wrap_model(net: MultiTaskNet, cfg: Config, device: torch.device) -> nn.Module:
    """The module the training step calls: ``net``, with channels-last, DDP and ``torch.compile``
    as ``cfg`` and the process group ask. ``net`` must already be on ``device``."""
    if cfg.run.channels_last:
        use_channels_last(net)
    model: nn.Module = net
    if distributed.is_distributed():
        # Buffers never change after construction (permuted orders) or change the same way on every
        # rank, from the synced parameters (a router's step count and choices): DDP syncs them once.
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        no_sync: dict[str, Any] = {sync: False}
        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, **no_sync
        )
    if cfg.run.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model
