"""Task data containers shared by every benchmark loader.

A benchmark is a list of :class:`TaskData`: one supervised task each, with its own
train / validation / test split (multi-input mode, paper Sec. 4.1-4.3), or a
:class:`SingleInputData` where every task labels the same inputs (CelebA, Sec. 4.4).

A task read from the user's own files also carries its :class:`Preprocessing`: how a raw input
(a CSV row, an image file) becomes a row of ``x``, and what its classes are called. A run keeps
it in its folder (``preprocessing.json``) so that predictions on new data apply the same steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

SPLITS = ("train", "val", "test")


class Encoded(NamedTuple):
    """Raw inputs made into network input: one id per row (a row number, a file name), the rows
    ``x`` (what ``TaskData.x_*`` holds for this task), and notes for the user (ignored columns)."""

    ids: list[str]
    x: Tensor
    notes: list[str]


class Preprocessing(ABC):
    """How one task's raw inputs become its network's input rows, fitted on its training rows;
    JSON-able (:meth:`to_dict`), so a run folder keeps it and predictions apply it."""

    #: what ``to_dict()["kind"]`` says (the benchmark that wrote it reads it back)
    kind: ClassVar[str]
    #: the task's class names in the user's words; class id ``i`` is ``classes[i]``
    classes: list[str]

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one row of the network's input (``TaskData.input_shape``)."""

    def training_stand_in(self) -> Tensor:
        """Rows that stand in for the task's training rows when its net is rebuilt without the
        data (``softorder predict``): what a net builder reads of them (their shape; for images,
        also their count and mean square, which Omniglot's ``input_norm=rms`` scales by). Default:
        one zero row."""
        return torch.zeros((1, *self.input_shape))

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Everything :meth:`encode` needs, as JSON (with ``kind``)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """The preprocessing :meth:`to_dict` wrote (a ValueError when it is not of this kind)."""

    @abstractmethod
    def encode(self, source: Any) -> Encoded:
        """New raw inputs (a file, a folder, a table) as rows of the task's network input."""


def preprocessing_of(tasks: Sequence[TaskData]) -> dict[str, Any] | None:
    """What a run folder records of its tasks' preprocessing (None: no task has any)."""
    if all(t.preprocessing is None for t in tasks):
        return None
    return {"version": 1, "tasks": {t.name: t.preprocessing.to_dict() if t.preprocessing else None
                                    for t in tasks}}


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
    #: how raw inputs become ``x`` (tasks of the user's own files; None for the paper's benchmarks)
    preprocessing: Preprocessing | None = field(default=None, compare=False, repr=False)

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
        if self.preprocessing is not None and len(self.preprocessing.classes) != self.num_classes:
            raise ValueError(
                f"task {self.name!r}: {self.num_classes} classes but its preprocessing names "
                f"{len(self.preprocessing.classes)}"
            )
        if self.binary and self.num_classes != 2:
            raise ValueError(
                f"task {self.name!r}: binary tasks have 2 classes, got {self.num_classes}"
            )

    @classmethod
    def from_rows(cls, name: str, num_classes: int, x: Tensor, y: Tensor, rows: Sequence[Tensor],
                  preprocessing: Preprocessing | None = None) -> TaskData:
        """The task whose train / val / test splits are the ``rows`` (three index tensors) of
        ``x`` and ``y``."""
        train, val, test = rows
        return cls(name, num_classes, x[train], y[train], x[val], y[val], x[test], y[test],
                   preprocessing=preprocessing)

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
