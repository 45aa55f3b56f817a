"""Task data containers shared by every benchmark loader.

A benchmark is a list of :class:`TaskData`: one supervised task each, with its own
train / validation / test split (multi-input mode, paper Sec. 4.1-4.3), or a
:class:`SingleInputData` where every task labels the same inputs (CelebA, Sec. 4.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")


@dataclass
class TaskData:
    """One task's data. ``x_*`` are float32 (or uint8 images), ``y_*`` int64 class ids.

    ``binary`` tasks have two classes and a single sigmoid output; others a softmax over
    ``num_classes``.
    """

    name: str
    num_classes: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    binary: bool = False

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y = self.split(split)
            if x.shape[0] == 0:  # an empty split would be scored as perfect (0 errors of 0)
                sizes = ", ".join(f"{s} {self.split(s)[0].shape[0]}" for s in SPLITS)
                raise ValueError(
                    f"task {self.name!r}: the {split} split is empty ({sizes} rows); give it a larger "
                    f"fraction of the data"
                )
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"task {self.name!r}: {split} split has {x.shape[0]} inputs but "
                    f"{y.shape[0]} labels"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                bad = int(((y < 0) | (y >= self.num_classes)).nonzero()[0, 0])
                raise ValueError(
                    f"task {self.name!r}: {split} label {int(y[bad])} at row {bad} is outside "
                    f"0..{self.num_classes - 1}"
                )
        if self.binary and self.num_classes != 2:
            raise ValueError(
                f"task {self.name!r}: binary tasks have 2 classes, got {self.num_classes}"
            )

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def in_features(self) -> int:
        return int(torch.tensor(self.input_shape).prod())
