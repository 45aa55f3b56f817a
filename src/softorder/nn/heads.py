"""Task-specific encoders E_t and decoders D_t around the shared core (Sec. 3.3, Fig. 1).

Encoders map each task's input to the core's input space; decoders map the core's output to each
task's predictions. Where every task's batch has the same shape, the per-task linear maps run as
one batched matmul over weights stacked on the fly (the parameters stay separate per task, so
``task_parameters(t)`` and the state_dict read naturally).

:class:`TaskHeads` is the decoders' interface, loss protocol included: what the network, the
trainers and the evaluation call. :class:`Decoders` is the classification head of Sec. 4; the
layer-behaviour experiment's regression head (Sec. 5) implements the same interface.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softorder.nn.orderings import Rows


class Encoders(nn.Module):
    """Base class. ``shared`` encoders apply one map to all tasks (no per-task parameters)."""

    shared: bool = False

    def encode(self, task: int, x: Tensor) -> Tensor:
        """E_t on one task's batch (the readable path)."""
        raise NotImplementedError  # pragma: no cover

    def forward(self, xs: Sequence[Tensor], rows: Rows) -> Tensor:
        """All tasks' batches, stacked along the rows."""
        return torch.cat([self.encode(t, x) for t, x in zip(rows.tasks, xs)])

    def task_modules(self, task: int) -> list[nn.Module]:
        return []

    def check_input(self, task: int, x: Tensor) -> None:
        pass


class DenseEncoders(Encoders):
    """Per-task ``Linear(in_t -> width) + ReLU``. ``frozen=True`` keeps them at their random
    initialisation (the MNIST setting, Sec. 4.1)."""

    def __init__(self, in_features: Sequence[int], width: int, frozen: bool = False) -> None:
        super().__init__()
        self.in_features, self.width, self.frozen = list(in_features), width, frozen
        self.layers = nn.ModuleList(nn.Linear(n, width) for n in self.in_features)
        if frozen:
            self.layers.requires_grad_(False)


    def linear(self, task: int) -> nn.Linear:
        """Task ``task``'s encoder layer."""
        return cast(nn.Linear, self.layers[task])
    def encode(self, task: int, x: Tensor) -> Tensor:
        return F.relu(self.layers[task](x))

    def forward(self, xs: Sequence[Tensor], rows: Rows) -> Tensor:
        if rows.uniform and len({x.shape[1] for x in xs}) == 1 and len(xs) > 1:
            w = torch.stack([self.linear(t).weight for t in rows.tasks])  # [S, width, in]
            b = torch.stack([self.linear(t).bias for t in rows.tasks])
            z = torch.baddbmm(b.unsqueeze(1), torch.stack(list(xs)), w.transpose(1, 2))
            return F.relu(z).view(-1, self.width)
        return super().forward(xs, rows)

    def task_modules(self, task: int) -> list[nn.Module]:
        return [self.layers[task]]

    def check_input(self, task: int, x: Tensor) -> None:
        n = self.in_features[task]
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"task {task}: expected input of shape [batch, {n}], got {tuple(x.shape)}")


def pad_channels(x: Tensor, channels: int) -> Tensor:
    """Images ``[N, c, H, W]`` zero-padded to ``channels`` channels (the identity encoder of Sec. 4.3)."""
    return F.pad(x, (0, 0, 0, 0, 0, channels - x.shape[1]))


class PadChannels(Encoders):
    """Identity encoder that zero-pads image channels up to the core's C (the Omniglot setting,
    Sec. 4.3: 1 -> 53 channels), after multiplying the images by ``scale`` (1: unchanged).
    ``pad=False`` leaves the padding to a core that takes fewer channels as zero-padded
    (:class:`~softorder.nn.ConvBank`), which then skips the convolution of the zeros."""

    shared = True

    def __init__(
        self, channels: int, image_shape: Sequence[int] | None = None, scale: float = 1.0, pad: bool = True
    ) -> None:
        super().__init__()
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"the input scale must be a positive number, got {scale}")
        self.channels, self.scale, self.pad = channels, float(scale), pad
        self.image_shape = tuple(image_shape) if image_shape is not None else None

    def encode(self, task: int, x: Tensor) -> Tensor:
        if self.scale != 1.0:
            x = x * self.scale
        return pad_channels(x, self.channels) if self.pad else x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale:g}, pad={self.pad}"

    def forward(self, xs: Sequence[Tensor], rows: Rows) -> Tensor:
        return self.encode(0, torch.cat(list(xs)) if len(xs) > 1 else xs[0])

    def check_input(self, task: int, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] > self.channels:
            raise ValueError(
                f"task {task}: expected images [batch, c <= {self.channels}, H, W], got {tuple(x.shape)}"
            )
        if self.image_shape is not None and tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"task {task}: expected images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )


class SharedEncoder(Encoders):
    """ONE module shared by all tasks, e.g. a ResNet-50 backbone (the CelebA setting, Sec. 4.4)."""

    shared = True

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def encode(self, task: int, x: Tensor) -> Tensor:
        return self.module(x)

    def forward(self, xs: Sequence[Tensor], rows: Rows) -> Tensor:
        return self.module(torch.cat(list(xs)) if len(xs) > 1 else xs[0])


class TaskHeads(nn.Module, abc.ABC):
    """The decoders D_t (Sec. 3.3): one head per task on the core's output, with its loss.

    Subclasses implement :meth:`decode`, :meth:`loss`, :meth:`row_losses`, :meth:`predict` and
    :meth:`check_target`; :meth:`forward`, :meth:`forward_shared` and :meth:`losses` are built on
    them (a subclass may override them with faster equivalents). ``num_classes[t]`` is the output
    count of task t (the network checks one head per task), ``binary[t]`` whether task t is a
    binary task (default: none is) and ``layers[t]`` its module (what
    ``MultiTaskNet.task_parameters(t)`` reads).

    ``standard_loss`` tells code that computes the loss its own way (the vectorised trials of
    ``train/trials.py``) whether :meth:`loss` and :meth:`row_losses` are the standard ones:
    cross-entropy on logits, BCE-with-logits for the tasks flagged in ``binary``. When it is
    False they must be called.
    """

    standard_loss: ClassVar[bool] = False
    num_classes: list[int]
    binary: list[bool]
    layers: nn.ModuleList

    def __init__(self, num_classes: Sequence[int], binary: Sequence[bool] | None = None) -> None:
        super().__init__()
        self.num_classes = list(num_classes)
        self.binary = list(binary) if binary is not None else [False] * len(self.num_classes)

    @abc.abstractmethod
    def decode(self, task: int, y: Tensor) -> Tensor:
        """D_t on the core output ``y`` of one task's rows: its logits (or predictions)."""

    @abc.abstractmethod
    def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        """Mean loss of one task (a scalar); the training loss is the sum over tasks (Sec. 3)."""

    @abc.abstractmethod
    def row_losses(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        """The loss of every row, ``[N]`` (what :meth:`loss` averages)."""

    @abc.abstractmethod
    def predict(self, task: int, logits: Tensor) -> Tensor:
        """The prediction of one task from its outputs (class ids for a classifier)."""

    @abc.abstractmethod
    def check_target(self, task: int, target: Tensor) -> None:
        """Raise a ValueError naming the task when ``target`` is not a valid target of it."""

    def forward(self, y: Tensor, rows: Rows) -> list[Tensor]:
        """Decode stacked rows; returns one output tensor per block of ``rows``."""
        return [self.decode(t, part) for t, part in zip(rows.tasks, y.split(list(rows.counts)))]

    def forward_shared(self, y: Tensor, tasks: Sequence[int]) -> list[Tensor]:
        """Every task in ``tasks`` decodes the same rows ``y``."""
        return [self.decode(t, y) for t in tasks]

    def losses(self, tasks: Sequence[int], logits: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        """Mean loss of each task, ``[len(tasks)]``."""
        return torch.stack([self.loss(t, z, y) for t, z, y in zip(tasks, logits, targets)])


class Decoders(TaskHeads):
    """Per-task linear decoders on the flattened core output (Sec. 4). A multiclass task gets
    ``num_classes`` logits (softmax / cross-entropy), a binary task one logit (sigmoid / BCE).
    A subclass that changes :meth:`loss` or :meth:`row_losses` must declare ``standard_loss``."""

    standard_loss = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = {"loss", "row_losses"} & set(vars(cls))
        if own and "standard_loss" not in vars(cls):
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(sorted(own))}: declare standard_loss "
                "(False unless it is still cross-entropy / BCE-with-logits)"
            )

    def __init__(
        self, in_features: int, num_classes: Sequence[int], binary: Sequence[bool] | None = None
    ) -> None:
        super().__init__(num_classes, binary)
        if len(self.binary) != len(self.num_classes):
            raise ValueError(f"got {len(self.num_classes)} class counts but {len(self.binary)} binary flags")
        for t, (c, b) in enumerate(zip(self.num_classes, self.binary)):
            if c < 2:
                raise ValueError(f"task {t}: needs >= 2 classes, got {c}")
            if b and c != 2:
                raise ValueError(f"task {t}: a binary task (one sigmoid output) has exactly 2 classes, got "
                                 f"{c}; make it binary=False for a softmax over {c} classes")
        self.out = [1 if b else c for c, b in zip(self.num_classes, self.binary)]
        self.layers = nn.ModuleList(nn.Linear(in_features, o) for o in self.out)


    def linear(self, task: int) -> nn.Linear:
        """Task ``task``'s decoder layer."""
        return cast(nn.Linear, self.layers[task])
    def decode(self, task: int, y: Tensor) -> Tensor:
        """The logits of one task: ``[N, classes]``, or ``[N]`` for a binary task."""
        logits = self.layers[task](y.flatten(1))
        return logits.squeeze(1) if self.binary[task] else logits

    def forward(self, y: Tensor, rows: Rows) -> list[Tensor]:
        """Decode stacked rows; returns one logits tensor per block of ``rows``."""
        if not rows.uniform or len(rows.tasks) == 1:
            return [self.decode(t, part) for t, part in zip(rows.tasks, y.split(list(rows.counts)))]
        top = max(self.out[t] for t in rows.tasks)  # pad every task's logits to `top`, one bmm
        ws: list[Tensor] = [self.linear(t).weight for t in rows.tasks]
        bs: list[Tensor] = [self.linear(t).bias for t in rows.tasks]
        if any(self.out[t] != top for t in rows.tasks):
            ws = [F.pad(w, (0, 0, 0, top - w.shape[0])) for w in ws]
            bs = [F.pad(b, (0, top - b.shape[0])) for b in bs]
        w, b = torch.stack(ws), torch.stack(bs)
        z = torch.baddbmm(b.unsqueeze(1), y.reshape(len(rows.tasks), rows.counts[0], -1), w.transpose(1, 2))
        return [self._trim(t, z[i]) for i, t in enumerate(rows.tasks)]

    def forward_shared(self, y: Tensor, tasks: Sequence[int]) -> list[Tensor]:
        """Every task decodes the same rows ``y``: one matmul with the decoders side by side."""
        w = torch.cat([self.linear(t).weight for t in tasks])
        b = torch.cat([self.linear(t).bias for t in tasks])
        z = F.linear(y.flatten(1), w, b).split([self.out[t] for t in tasks], dim=1)
        return [self._trim(t, zi) for t, zi in zip(tasks, z)]

    def _trim(self, task: int, z: Tensor) -> Tensor:
        return z[:, 0] if self.binary[task] else z[:, : self.out[task]]

    def losses(self, tasks: Sequence[int], logits: Sequence[Tensor], targets: Sequence[Tensor]) -> Tensor:
        """Mean loss of each task, ``[len(tasks)]``; one call for same-shaped tasks of one kind."""
        kinds = {(self.binary[t], tuple(z.shape)) for t, z in zip(tasks, logits)}
        if self.standard_loss and len(tasks) > 1 and len(kinds) == 1 and len({y.shape for y in targets}) == 1:
            z, y = torch.stack(list(logits)), torch.stack(list(targets))  # [S, B(, C)], [S, B]
            if self.binary[tasks[0]]:
                per_row = F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="none")
            else:
                per_row = F.cross_entropy(z.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
            return per_row.mean(1)
        return super().losses(tasks, logits, targets)

    def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        """Mean loss of one task: cross-entropy, or BCE-with-logits for a binary task."""
        if self.binary[task]:
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return F.cross_entropy(logits, target)

    def row_losses(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        """The loss of every row, ``[N]`` (what :meth:`loss` averages)."""
        if self.binary[task]:
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
        return F.cross_entropy(logits, target, reduction="none")

    def predict(self, task: int, logits: Tensor) -> Tensor:
        """Predicted class ids of one task."""
        return (logits > 0).long() if self.binary[task] else logits.argmax(1)

    def check_target(self, task: int, target: Tensor) -> None:
        """Class ids of one task: an integer tensor with values in 0..classes-1."""
        if target.is_floating_point() or target.dtype == torch.bool:
            raise ValueError(
                f"task {task}: labels must be integer class ids (torch.long), got {target.dtype}"
            )
        if not self.binary[task] and target.dtype not in (torch.long, torch.uint8):
            raise ValueError(f"task {task}: labels are {target.dtype}; cross-entropy takes torch.long "
                             "class ids: pass labels.long()")
        c = self.num_classes[task]
        bad = (target < 0) | (target >= c)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"task {task}: label {int(target[row])} at row {row} is outside 0..{c - 1} "
                f"(the task has {c} classes)"
            )
