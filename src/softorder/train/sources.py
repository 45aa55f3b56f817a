"""Where the trainer's batches come from, and how it scores a split.

Two batch sources cover the paper's two modes:

* :class:`TaskBatches` — multi-input (Sec. 4.1-4.3): every step draws one batch from EVERY task
  (smaller tasks cycle through reshuffled epochs), the net sees one input per task;
* :class:`LoaderBatches` — single-input (Sec. 4.4, CelebA): every step draws ONE batch of a
  ``DataLoader`` and every task predicts on it.

An :class:`Evaluator` gives each task's mean loss and error on a split: :class:`TaskEvaluator`
over in-memory :class:`TaskData`, :class:`LoaderEvaluator` over one loader per split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train import distributed
from softorder.train.metrics import Scores, as_input, autocast, evaluate

Inputs = list[Tensor] | Tensor  # one input per task (multi-input) or one for all (single-input)


class BatchSource(ABC):
    """Training batches: ``next()`` gives the net's input and one target tensor per task."""

    #: the ``metrics.jsonl`` key of this source's throughput (rows per second), if it logs one
    throughput_key: str | None = None
    #: what a target column is called in messages ("task", CelebA's "attribute")
    what: str = "task"

    @abstractmethod
    def next(self) -> tuple[Inputs, list[Tensor]]: ...

    @abstractmethod
    def rows_per_step(self) -> int: ...

    def to(self, device: torch.device) -> None:
        """Keep what the source holds on ``device`` (called once, before training)."""
        return None

    def check(self, net: MultiTaskNet) -> None:
        """Refuse targets the net's decoders cannot score (called once, before training)."""
        return None

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The entries this source adds to the checkpoint (top-level keys)."""

    @abstractmethod
    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        """Restore from a checkpoint written with :meth:`state_dict`'s entries."""


class TaskSampler:
    """Draws batches of one task's training rows without replacement, reshuffling each epoch.

    With ``world_size`` processes every rank walks the same seeded permutation, draws the same
    global batch of ``world_size × batch_size`` rows and returns its own slice ``rank``; the union of
    the slices is what one process with batch ``world_size × batch_size`` draws. The state is the
    same on every rank and does not depend on the world size.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError("a task has no training rows")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1} (world size {world_size})")
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(n, generator=self.gen), 0

    def next(self) -> Tensor:
        """This rank's ``batch_size`` row indices of the next global batch."""
        idx = self._next_global()
        if self.world_size == 1:
            return idx
        return idx[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def _next_global(self) -> Tensor:
        out = []
        need = self.batch_size * self.world_size
        while need:
            if self.pos == self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos : self.pos + take])
            self.pos, need = self.pos + take, need - take
        return torch.cat(out) if len(out) > 1 else out[0]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.gen.set_state(s["gen"])
        self.perm, self.pos = s["perm"], int(s["pos"])


def task_samplers(tasks: Sequence[TaskData], batch_size: int, seed: int, rank: int = 0,
                  world_size: int = 1) -> list[TaskSampler]:
    """One sampler per task; task ``i`` of the run with seed ``seed`` draws from seed ``seed·1000+i``."""
    return [TaskSampler(t.x_train.shape[0], batch_size, seed * 1000 + i, rank, world_size)
            for i, t in enumerate(tasks)]


class TaskBatches(BatchSource):
    """Multi-input batches: ``batch_size`` rows of every task per step (this rank's slice under
    torchrun)."""

    def __init__(self, tasks: Sequence[TaskData], batch_size: int, seed: int) -> None:
        self.tasks, self.batch_size = list(tasks), batch_size
        self.samplers = task_samplers(tasks, batch_size, seed, distributed.rank(), distributed.world_size())
        self.device = torch.device("cpu")
        self.x = [t.x_train for t in tasks]
        self.y = [t.y_train for t in tasks]

    def to(self, device: torch.device) -> None:
        self.device = device
        self.x = [x.to(device) for x in self.x]
        self.y = [y.to(device) for y in self.y]

    def check(self, net: MultiTaskNet) -> None:
        if len(self.tasks) != net.num_tasks:
            raise ValueError(f"the net has {net.num_tasks} tasks but {len(self.tasks)} were given")
        for i, y in enumerate(self.y):
            net.decoders.check_target(i, y)

    def next(self) -> tuple[Inputs, list[Tensor]]:
        xs, ys = [], []
        for sampler, x, y in zip(self.samplers, self.x, self.y):
            idx = sampler.next().to(self.device)
            xs.append(as_input(x[idx]))
            ys.append(y[idx])
        return xs, ys

    def rows_per_step(self) -> int:
        return self.batch_size * len(self.tasks)

    def state_dict(self) -> dict[str, Any]:
        return {"samplers": [s.state_dict() for s in self.samplers]}  # the same on every rank

    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        for s, st in zip(self.samplers, ckpt["samplers"], strict=True):
            s.load_state_dict(st)


class LoaderBatches(BatchSource):
    """Single-input batches from a shuffling ``DataLoader`` of ``(x, y[N, T'])``; the first
    ``tasks`` label columns are the targets.

    Epoch ``e`` is shuffled by the loader's generator reseeded with ``(seed, e)``. A resumed run
    restarts its interrupted epoch from the beginning (the checkpoint keeps the epoch, not the
    position inside it); a checkpoint taken at the end of an epoch resumes exactly."""

    throughput_key = "train_images_per_s"
    what = "attribute"

    def __init__(self, loader: DataLoader[Any], seed: int, tasks: int, channels_last: bool = False) -> None:
        if not isinstance(loader.generator, torch.Generator):
            raise ValueError("LoaderBatches needs a DataLoader with its own generator (shuffle order)")
        self.loader, self.gen, self.seed, self.tasks = loader, loader.generator, seed, tasks
        self.channels_last, self.device = channels_last, torch.device("cpu")
        self.epoch, self._left = 0, 0
        self._batches: Iterator[Any] | None = None

    def to(self, device: torch.device) -> None:
        self.device = device

    def next(self) -> tuple[Inputs, list[Tensor]]:
        """The next batch; the epoch counts as done with its last batch, so a checkpoint taken
        then resumes with the next one."""
        if self._batches is None:
            self.gen.manual_seed(self.seed * 1_000_003 + self.epoch)
            self._batches, self._left = iter(self.loader), len(self.loader)
        x, y = next(self._batches)
        self._left -= 1
        if self._left == 0:
            self._batches, self.epoch = None, self.epoch + 1
        x, y = to_device(x, y, self.device, self.channels_last, self.tasks)
        return x, list(y.unbind(1))

    def rows_per_step(self) -> int:
        return int(self.loader.batch_size or 1)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        self.epoch, self._batches = int(ckpt["epoch"]), None


def to_device(
    x: Tensor, y: Tensor, device: torch.device, channels_last: bool, tasks: int
) -> tuple[Tensor, Tensor]:
    """A loader batch on ``device``: images (NHWC when ``channels_last``) and the first ``tasks``
    label columns."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y[:, :tasks].to(device, non_blocking=True)


class Evaluator(ABC):
    """Each task's mean loss and error on a split (``val`` while training, ``test`` at the end)."""

    @abstractmethod
    def __call__(self, net: MultiTaskNet, split: str) -> Scores: ...

    def result_extras(self, test: Scores) -> dict[str, Any]:
        """Entries the run's ``result.json`` adds after the standard ones."""
        return {}


class TaskEvaluator(Evaluator):
    """Scores over the ``val`` / ``test`` rows of in-memory tasks."""

    def __init__(self, tasks: Sequence[TaskData], precision: str = "fp32") -> None:
        self.tasks, self.precision = list(tasks), precision

    def __call__(self, net: MultiTaskNet, split: str) -> Scores:
        return evaluate(net, self.tasks, split, precision=self.precision)


class LoaderEvaluator(Evaluator):
    """Scores over one single-input loader per split (every task predicts on every image)."""

    def __init__(self, loaders: Mapping[str, DataLoader[Any]], precision: str = "fp32",
                 channels_last: bool = False) -> None:
        self.loaders, self.precision, self.channels_last = dict(loaders), precision, channels_last

    @torch.no_grad()
    def __call__(self, net: MultiTaskNet, split: str) -> Scores:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        loss_sum = torch.zeros(net.num_tasks, device=device, dtype=torch.float64)
        wrong = torch.zeros(net.num_tasks, device=device, dtype=torch.int64)
        n = 0
        for x, y in self.loaders[split]:
            x, y = to_device(x, y, device, self.channels_last, net.num_tasks)
            with autocast(device, self.precision):
                logits = [z.float() for z in net(x)]
            loss_sum += net.losses(logits, list(y.unbind(1)), check=False).double() * y.shape[0]
            wrong += (torch.stack(net.predict(logits), 1) != y).sum(0)
            n += y.shape[0]
        net.train(was_training)
        n = max(n, 1)
        return Scores((loss_sum / n).tolist(), (wrong.double() / n).tolist())

    def result_extras(self, test: Scores) -> dict[str, Any]:
        accuracy = [1.0 - e for e in test.error]
        return {
            "test_accuracy": accuracy,
            "mean_test_accuracy": sum(accuracy) / len(accuracy),
            "eval_images": {s: len(self.loaders[s].dataset) for s in ("val", "test")},  # type: ignore[arg-type]
        }
