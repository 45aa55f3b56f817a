"""The multitask network: per-task encoders -> ordered shared core -> per-task decoders (Fig. 1).

Two input modes:

* multi-input: ``net([x_0, ..., x_{T-1}])`` — one batch per task (tasks may differ in input size
  and class count, as the ten UCI datasets do);
* single-input: ``net(x)`` — one batch, every task predicts on it (CelebA's 40 attributes).

Both return one logits tensor per task. All tasks run through the core together (fused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from softorder.nn.banks import ConvBank, DenseBank, Init, LayerBank
from softorder.nn.heads import Decoders, DenseEncoders, Encoders, PadChannels, SharedEncoder, TaskHeads
from softorder.nn.learned import Anneal
from softorder.nn.make import make_ordering
from softorder.nn.orderings import Ordering, Rows, SoftOrdering

Inputs = Tensor | Sequence[Tensor]
#: Makes the shared layers: ``n`` -> a bank of ``n`` layers (the builders' ``bank`` argument).
BankFactory = Callable[[int], LayerBank]


class MultiTaskNet(nn.Module):
    """Encoders E_t, an ordered core of shared layers, decoders D_t (Sec. 3.3).

    Set ``check_finite=True`` to reject NaN/inf inputs with an error naming the task.
    """

    def __init__(
        self, encoders: Encoders, core: Ordering, decoders: TaskHeads, check_finite: bool = False
    ) -> None:
        super().__init__()
        if len(decoders.num_classes) != core.num_tasks:
            raise ValueError(f"core has {core.num_tasks} tasks but {len(decoders.num_classes)} decoders")
        if isinstance(encoders, DenseEncoders) and len(encoders.in_features) != core.num_tasks:
            raise ValueError(f"core has {core.num_tasks} tasks but {len(encoders.in_features)} encoders")
        self.encoders, self.core, self.decoders = encoders, core, decoders
        self.check_finite = check_finite

    @property
    def num_tasks(self) -> int:
        return self.core.num_tasks

    @property
    def ordering(self) -> str:
        return self.core.name

    def forward(self, x: Inputs, tasks: Sequence[int] | None = None) -> list[Tensor]:
        """Logits of each task in ``tasks`` (default: all), in that order."""
        tasks = self.check_tasks(tasks)
        if isinstance(x, Tensor):
            return self._forward_single(x, tasks)
        xs = list(x)
        if len(xs) != len(tasks):
            raise ValueError(
                f"multi-input mode takes one batch per task: expected {len(tasks)} batches "
                f"(tasks {list(tasks)}), got {len(xs)}"
            )
        for t, xt in zip(tasks, xs):
            self._check_input(t, xt)
        rows = Rows.of(tuple(tasks), tuple(xt.shape[0] for xt in xs))
        h = self.encoders(xs, rows)
        self.core.bank.check_input(h, "core input", self.core.depth)
        return self.decoders(self.core(h, rows), rows)

    def _forward_single(self, x: Tensor, tasks: list[int]) -> list[Tensor]:
        self._check_input(tasks[0], x)
        if not self.encoders.shared:  # each task encodes the same batch its own way
            return self.forward([x] * len(tasks), tasks)
        h = self.encoders([x], Rows.of((tasks[0],), (x.shape[0],)))
        self.core.bank.check_input(h, "core input", self.core.depth)
        if self.core.shares_path:  # parallel: the core output is the same for every task
            return self.decoders.forward_shared(self.core(h, Rows.of((tasks[0],), (x.shape[0],))), tasks)
        rows = Rows.of(tuple(tasks), (x.shape[0],) * len(tasks))
        h = h.unsqueeze(0).expand(len(tasks), *h.shape).reshape(-1, *h.shape[1:])
        return self.decoders(self.core(h, rows), rows)

    def check_tasks(self, tasks: Sequence[int] | None) -> list[int]:
        if tasks is None:
            return list(range(self.num_tasks))
        tasks = [int(t) for t in tasks]
        for t in tasks:
            if not 0 <= t < self.num_tasks:
                raise ValueError(
                    f"task id {t} is out of range: the network has tasks 0..{self.num_tasks - 1}"
                )
        if not tasks:
            raise ValueError("tasks is empty: name at least one task")
        return tasks

    def _check_input(self, task: int, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"task {task}: expected a tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"task {task}: expected a floating-point input, got {x.dtype} (use x.float())")
        where = next(self.parameters()).device
        if x.device != where:
            raise ValueError(f"task {task}: the input is on {x.device} but the network is on {where}")
        self.encoders.check_input(task, x)
        if self.check_finite and not bool(torch.isfinite(x).all()):
            raise ValueError(f"task {task}: input contains NaN or inf values")

    # -- losses and predictions ---------------------------------------------------------------
    def losses(
        self,
        logits: Sequence[Tensor],
        targets: Sequence[Tensor],
        tasks: Sequence[int] | None = None,
        check: bool = True,
    ) -> Tensor:
        """Mean loss of each task, ``[len(tasks)]``. The training loss is their sum (Sec. 3).
        ``check=False`` skips the label-range check (for labels validated once up front)."""
        tasks = self.check_tasks(tasks)
        if len(targets) != len(tasks) or len(logits) != len(tasks):
            raise ValueError(
                f"expected {len(tasks)} logits and targets, got {len(logits)} and {len(targets)}"
            )
        for t, z, y in zip(tasks, logits, targets):  # shapes and dtypes only: no device sync
            if y.shape[0] == 0:
                raise ValueError(f"task {t}: the batch is empty (a mean loss over 0 rows is NaN)")
            if y.shape[0] != z.shape[0]:
                raise ValueError(f"task {t}: {y.shape[0]} labels for {z.shape[0]} rows of logits")
        if check:
            for t, y in zip(tasks, targets):
                self.decoders.check_target(t, y)
        return self.decoders.losses(tasks, logits, targets)

    def predict(self, logits: Sequence[Tensor], tasks: Sequence[int] | None = None) -> list[Tensor]:
        tasks = self.check_tasks(tasks)
        return [self.decoders.predict(t, z) for t, z in zip(tasks, logits)]

    # -- parameter groups ---------------------------------------------------------------------
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """The core's layers (and a shared encoder's parameters). For ``single`` ordering the
        core holds each task's private layers stacked in one tensor."""
        yield from self.core.bank.parameters()
        if isinstance(self.encoders, SharedEncoder):
            yield from (p for p in self.encoders.parameters() if p.requires_grad)

    def ordering_parameters(self) -> Iterator[nn.Parameter]:
        """The soft-ordering scalings S (empty for the hard orderings); S has its own learning rate."""
        if isinstance(self.core, SoftOrdering):
            yield self.core.S

    def gate_parameters(self) -> Iterator[nn.Parameter]:
        """A gated core's per-task gates (empty for the other orderings); trained with the layers'
        learning rate. With :meth:`shared_parameters`, :meth:`ordering_parameters` and each task's
        :meth:`task_parameters` they are every trainable parameter of the net."""
        shared = {id(p) for p in self.core.bank.parameters()} | {id(p) for p in self.ordering_parameters()}
        yield from (p for p in self.core.parameters() if p.requires_grad and id(p) not in shared)

    def task_parameters(self, task: int) -> Iterator[nn.Parameter]:
        """Trainable parameters of task ``task``'s own encoder and decoder."""
        self.check_tasks([task])
        for m in [*self.encoders.task_modules(task), self.decoders.layers[task]]:
            yield from (p for p in m.parameters() if p.requires_grad)

    def mixing_weights(self) -> Tensor | None:
        """The mixing weights ``[T, depth, layer]``, detached: softmax(S / temperature), or with
        ``soft_norm="l2"`` that divided by its L2 norm over the layers (a row then sums to between
        1 and sqrt(layers)); None for hard orderings."""
        if isinstance(self.core, SoftOrdering):
            return self.core.weights().detach()
        return None


def dense_core(
    ordering: str,
    num_tasks: int,
    width: int,
    num_layers: int,
    depth: int | None,
    dropout: float,
    init: Init,
    seed: int,
    temperature: float,
    soft_norm: str,
    *,
    orders_on_device: bool = False,
    bank: BankFactory | None = None,
    depth_norm: str = "none",
    gate_hidden: int = 0,
    anneal: Anneal | None = None,
) -> Ordering:
    """``num_layers`` shared dense ReLU layers of ``width`` in the given ordering (Sec. 3), or the
    layers ``bank`` makes (rows of ``width`` features in and out)."""
    return make_ordering(
        ordering,
        bank or (lambda n: DenseBank(width, n, dropout, init)),
        num_tasks,
        num_layers,
        depth,
        seed=seed,
        temperature=temperature,
        norm=soft_norm,
        orders_on_device=orders_on_device,
        depth_norm=depth_norm,
        gate_hidden=gate_hidden,
        gate_features=width,
        anneal=anneal,
    )


def dense_net(
    in_features: int | Sequence[int],
    num_classes: Sequence[int],
    *,
    width: int = 64,
    num_layers: int = 4,
    depth: int | None = None,
    ordering: str = "soft",
    dropout: float = 0.0,
    encoder: str = "learned",
    binary: Sequence[bool] | bool = False,
    seed: int = 0,
    init: Init = "torch",
    temperature: float = 1.0,
    soft_norm: str = "none",
    depth_norm: str = "none",
    check_finite: bool = False,
    orders_on_device: bool = False,
    bank: BankFactory | None = None,
    gate_hidden: int = 0,
    anneal: Anneal | None = None,
) -> MultiTaskNet:
    """A dense multitask net (Sec. 4.1, 4.2): per-task ``Linear(in_t -> width) + ReLU`` encoders
    (``encoder='learned'`` or ``'frozen'``), ``num_layers`` shared dense ReLU layers of ``width``
    (or what ``bank`` makes, e.g. a :class:`~softorder.nn.ModuleBank` of residual blocks) in the
    given ``ordering``, and per-task linear decoders. ``orders_on_device``: see
    :meth:`~softorder.nn.orderings.HardOrdering.use_orders_on_device`."""
    num_tasks = len(num_classes)
    ins = [in_features] * num_tasks if isinstance(in_features, int) else list(in_features)
    if encoder not in ("learned", "frozen"):
        raise ValueError(f"unknown encoder {encoder!r}; choose 'learned' or 'frozen'")
    flags = [binary] * num_tasks if isinstance(binary, bool) else list(binary)
    encoders = DenseEncoders(ins, width, frozen=encoder == "frozen")
    core = dense_core(
        ordering, num_tasks, width, num_layers, depth, dropout, init, seed, temperature, soft_norm,
        orders_on_device=orders_on_device, bank=bank, depth_norm=depth_norm, gate_hidden=gate_hidden,
        anneal=anneal,
    )
    return MultiTaskNet(encoders, core, Decoders(width, num_classes, flags), check_finite)


def conv_net(
    num_classes: Sequence[int],
    *,
    image_shape: Sequence[int] = (1, 105, 105),
    channels: int = 53,
    num_layers: int = 4,
    depth: int | None = None,
    kernel_size: int = 3,
    padding: int = 0,
    ordering: str = "soft",
    dropout: float = 0.0,
    seed: int = 0,
    init: Init = "torch",
    temperature: float = 1.0,
    soft_norm: str = "none",
    depth_norm: str = "none",
    check_finite: bool = False,
    channels_last: bool = False,
    orders_on_device: bool = False,
    input_scale: float = 1.0,
    bank: BankFactory | None = None,
    gate_hidden: int = 0,
    anneal: Anneal | None = None,
) -> MultiTaskNet:
    """The Omniglot net (Sec. 4.3): identity encoder zero-padding channels up to ``channels``
    (the images times ``input_scale`` first), ``num_layers`` shared ``conv k×k -> max-pool 2 ->
    ReLU`` layers (or what ``bank`` makes: images of ``channels`` channels in and out), per-task
    softmax decoders. ``channels_last`` and ``orders_on_device``: see :mod:`softorder.nn.orderings`."""
    num_tasks = len(num_classes)
    if image_shape[0] > channels:
        raise ValueError(f"conv_net: images of {image_shape[0]} channels but channels={channels}; the "
                         f"identity encoder zero-pads images to `channels`: use channels >= {image_shape[0]}")

    def conv_bank(n: int) -> ConvBank:
        return ConvBank(channels, n, kernel_size, padding, dropout=dropout, init=init)

    core = make_ordering(
        ordering,
        bank or conv_bank,
        num_tasks,
        num_layers,
        depth,
        seed=seed,
        temperature=temperature,
        norm=soft_norm,
        channels_last=channels_last,
        orders_on_device=orders_on_device,
        depth_norm=depth_norm,
        gate_hidden=gate_hidden,
        gate_features=channels,
        anneal=anneal,
    )
    out = core.bank.output_shape((channels, *image_shape[1:]), core.depth)
    features = int(torch.tensor(out).prod())
    return MultiTaskNet(
        PadChannels(channels, image_shape, input_scale, pad=not isinstance(core.bank, ConvBank)),
        core, Decoders(features, num_classes), check_finite,
    )


def shared_encoder_net(
    backbone: nn.Module,
    num_classes: Sequence[int],
    *,
    width: int = 256,
    num_layers: int = 4,
    depth: int | None = None,
    ordering: str = "soft",
    dropout: float = 0.0,
    binary: Sequence[bool] | bool = True,
    seed: int = 0,
    init: Init = "torch",
    temperature: float = 1.0,
    soft_norm: str = "none",
    depth_norm: str = "none",
    orders_on_device: bool = False,
    bank: BankFactory | None = None,
    gate_hidden: int = 0,
    anneal: Anneal | None = None,
) -> MultiTaskNet:
    """One backbone shared by every task (it must output ``[batch, width]``), an ordered dense
    core (or what ``bank`` makes) and per-task decoders: the CelebA setting (Sec. 4.4).
    ``orders_on_device``: see :meth:`~softorder.nn.orderings.HardOrdering.use_orders_on_device`."""
    num_tasks = len(num_classes)
    many = [t for t, c in enumerate(num_classes) if c != 2]
    if binary is True and many:
        raise ValueError(f"shared_encoder_net: task {many[0]} has {num_classes[many[0]]} classes, but "
                         "binary=True (the default: one sigmoid output per task, as CelebA's attributes); "
                         "pass binary=False for softmax decoders")
    flags = [binary] * num_tasks if isinstance(binary, bool) else list(binary)
    core = dense_core(
        ordering, num_tasks, width, num_layers, depth, dropout, init, seed, temperature, soft_norm,
        orders_on_device=orders_on_device, bank=bank, depth_norm=depth_norm, gate_hidden=gate_hidden,
        anneal=anneal,
    )
    return MultiTaskNet(SharedEncoder(backbone), core, Decoders(width, num_classes, flags))
