"""Many small runs at once: the trials of one method trained as ONE vectorised model.

``softorder compare`` runs every method several times with seeds ``seed + k``. For small models
(UCI, MNIST) one training step is a few milliseconds of Python and kernel launches, so running
the R trials one after another wastes the machine. Here the R networks are stacked
(``torch.func.stack_module_state``) and one step runs all of them under ``torch.func.vmap``.

Each trial is still its own run: its own data split and task draw, its own initialisation (built
exactly as a sequential run builds it), its own batches (the same
:class:`TaskSampler` seeds), its own orders (``permuted``), dropout masks and best-on-validation
checkpoint, and its own run directory with the files of a sequential run. Adam is elementwise, so
stacked parameters trained on the sum of the trials' losses follow R independent Adam runs; with
dropout off a vectorised trial matches its sequential run up to float rounding (tested).
Dropout masks come from a different random stream than in a sequential run.

A group writes nothing until it has finished (the per-trial files are written at the end), so an
interrupted group leaves no half-written run behind and is simply run again.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from softorder.data.tasks import TaskData, preprocessing_of
from softorder.nn.network import MultiTaskNet
from softorder.nn.orderings import HardOrdering
from softorder.train import distributed, health
from softorder.train.config import Config
from softorder.train.logs import BufferedLog, RunLog
from softorder.train.metrics import Scores, as_input, autocast, evaluate
from softorder.train.optim import group_settings, warm_up
from softorder.train.rundir import RunDir
from softorder.train.sources import task_samplers
from softorder.train.trainer import Learner, LossGuard, Trainer

Build = Callable[[Config, Sequence[TaskData]], MultiTaskNet]  # one trial's net (a benchmark's builder)


def check_stackable(cfgs: Sequence[Config]) -> None:
    """Trials can share one vectorised model only if their configs differ in ``seed`` alone."""
    if not cfgs:
        raise ValueError("no trials to run")
    first = cfgs[0].replace(seed=0)
    for c in cfgs[1:]:
        if c.replace(seed=0) != first:
            diff = sorted(k for k in first.differences(c.replace(seed=0)))
            raise ValueError(f"vectorised trials must differ only in seed; these also differ: {diff}")
    if len({c.seed for c in cfgs}) != len(cfgs):
        raise ValueError(f"vectorised trials need distinct seeds, got {[c.seed for c in cfgs]}")
    if distributed.world_size() > 1:
        raise ValueError("vectorised trials run in one process; do not launch them with torchrun")


def _pad_stack(parts: Sequence[Tensor]) -> Tensor:
    """Stack tensors whose first dimension differs, zero-padding to the longest: ``[R, n_max, ...]``."""
    n = max(p.shape[0] for p in parts)
    out = parts[0].new_zeros((len(parts), n, *parts[0].shape[1:]))
    for r, p in enumerate(parts):
        out[r, : p.shape[0]] = p
    return out


class StackedTrials(Learner):
    """R trials of one config (seeds differ) as one vectorised model; trained by the
    :class:`~softorder.train.trainer.Trainer`, each trial with its own run folder."""

    def __init__(self, cfgs: Sequence[Config], task_sets: Sequence[Sequence[TaskData]], build: Build) -> None:
        check_stackable(cfgs)
        if any(c.run.cuda_graphs for c in cfgs):
            raise ValueError(
                "cuda_graphs captures one run's step; train the trials one by one (--no-vectorise)"
            )
        if len(cfgs) != len(task_sets):
            raise ValueError(f"got {len(cfgs)} configs and {len(task_sets)} task sets")
        self.cfgs, self.runs = list(cfgs), len(cfgs)
        self.task_sets = [list(ts) for ts in task_sets]
        cfg = self.cfg = self.cfgs[0]
        self.device = distributed.select_device(cfg.run.device)
        self.nets: list[MultiTaskNet] = []
        for c, tasks in zip(self.cfgs, self.task_sets):
            torch.manual_seed(c.seed)  # the same initialisation as a sequential run of this seed
            self.nets.append(build(c, tasks).to(self.device))
        shapes = [{k: v.shape for k, v in n.state_dict().items()} for n in self.nets]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(
                "the trials' networks differ in shape (task draws of other sizes); run them one by one"
            )
        for net, tasks in zip(self.nets, self.task_sets):
            for t, task in enumerate(tasks):
                net.decoders.check_target(t, task.y_train)
        self.params, self.buffers = stack_module_state(self.nets)
        #: the core's own stacked parameters and buffers (``core.S``, a router's counts): what
        #: :meth:`~softorder.nn.Ordering.advance_state` updates after every step
        self.core_state = {n: t for n, t in {**self.params, **self.buffers}.items()
                           if n.startswith("core.") and n.count(".") == 1}
        # The module whose code runs; vmap swaps in each trial's tensors (functional_call).
        self.base = self.nets[0]
        if isinstance(self.base.core, HardOrdering):
            self.base.core.use_orders_on_device()  # each trial's own `order` buffer (permuted)
        dec = type(self.base.decoders)
        self._custom_loss = not dec.standard_loss  # not cross-entropy: call the head's own loss
        self.view = copy.deepcopy(self.base)  # one trial's weights at a time, for evaluation
        self.opt = self._optimizer()
        self._step = vmap(self._losses, randomness="different")
        T, B = len(self.task_sets[0]), cfg.optim.batch_size
        self.samplers = [task_samplers(ts, B, c.seed) for c, ts in zip(self.cfgs, self.task_sets)]
        sets = self.task_sets
        self.train_x = [_pad_stack([ts[t].x_train for ts in sets]).to(self.device) for t in range(T)]
        self.train_y = [_pad_stack([ts[t].y_train for ts in sets]).to(self.device) for t in range(T)]
        self.trial_index = torch.arange(len(self.cfgs), device=self.device)[:, None]
        self._eval_sets: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        # What check_losses calls entry r * T + t of the flattened [trials, tasks] losses.
        self.run_names = [
            f"task {t} ({task.name}) in the trial with seed {c.seed}"
            for c, ts in zip(self.cfgs, self.task_sets)
            for t, task in enumerate(ts)
        ]
        self.guard = LossGuard(self.run_names, None, what="stacked run")

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam as :func:`softorder.train.optim.make_optimizer`, on the stacked tensors."""
        s_ids = {id(p) for p in self.base.ordering_parameters()}
        s_names = {name for name, p in self.base.named_parameters() if id(p) in s_ids}
        rest = [p for k, p in self.params.items() if p.requires_grad and k not in s_names]
        groups: list[dict[str, Any]] = [{"params": rest, "name": "net", **group_settings(self.cfg, "net")}]
        if s_names:
            s_params = [self.params[k] for k in sorted(s_names)]
            groups.append({"params": s_params, "name": "S", **group_settings(self.cfg, "S")})
        try:
            return torch.optim.Adam(groups, lr=self.cfg.optim.lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(groups, lr=self.cfg.optim.lr, foreach=True)

    def _losses(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], xs: list[Tensor], ys: list[Tensor]
    ) -> Tensor:
        """One trial's per-task losses (vmapped over trials)."""
        with autocast(self.device, self.cfg.run.precision):
            logits = functional_call(self.base, (params, buffers), (xs,))
        if self._custom_loss:
            return self.base.losses([z.float() for z in logits], ys, check=False)
        dec = self.base.decoders
        return torch.stack([  # what Decoders.loss computes; nll_loss is slow under vmap on CPU
            F.binary_cross_entropy_with_logits(z.float(), y.float())
            if dec.binary[t]
            else -torch.log_softmax(z.float(), 1).gather(1, y[:, None]).mean()
            for t, (z, y) in enumerate(zip(logits, ys))
        ])

    def train_step(self, step: int) -> Tensor:
        """One step of every trial; returns the losses ``[trials, tasks]``."""
        xs, ys = [], []
        for t, (x, y) in enumerate(zip(self.train_x, self.train_y)):
            idx = torch.stack([s[t].next() for s in self.samplers]).to(self.device)  # [R, B]
            xs.append(as_input(x[self.trial_index, idx]))
            ys.append(y[self.trial_index, idx])
        losses = self._step(self.params, self.buffers, xs, ys)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.guard(losses.flatten(), step)
        warm_up(self.opt, self.cfg, step)
        self.opt.step()
        with torch.no_grad():  # each trial's core moves on one step (a router: its own counts)
            self.base.core.advance_state({name[len("core."):]: t for name, t in self.core_state.items()})
        return losses.detach()

    @torch.no_grad()
    def evaluate(self, split: str, chunk: int = 1024) -> list[Scores]:
        """Every trial's (per-task mean loss, per-task error) on ``split``, as
        :func:`softorder.train.metrics.evaluate` gives for one run, with all trials in one pass."""
        if self._custom_loss:  # evaluate one trial at a time
            return [evaluate(self.net(r), ts, split, chunk, self.cfg.run.precision)
                    for r, ts in enumerate(self.task_sets)]
        T = len(self.task_sets[0])
        if split not in self._eval_sets:
            self._eval_sets[split] = [self._stack_split(split, t) for t in range(T)]
        losses, errors = torch.zeros(len(self.cfgs), T), torch.zeros(len(self.cfgs), T)
        self.base.eval()
        try:
            for t, (x, y, n) in enumerate(self._eval_sets[split]):
                run = vmap(functools.partial(self._scores, task=t))
                for i in range(0, x.shape[1], chunk):
                    xb, yb = as_input(x[:, i : i + chunk]), y[:, i : i + chunk]
                    row_loss, wrong = run(self.params, self.buffers, xb, yb)
                    valid = (torch.arange(i, i + row_loss.shape[1], device=n.device) < n[:, None]).float()
                    losses[:, t] += (row_loss * valid).sum(1).cpu()
                    errors[:, t] += (wrong * valid).sum(1).cpu()
                count = n.clamp(min=1).float().cpu()
                losses[:, t] /= count
                errors[:, t] /= count
        finally:
            self.base.train()
        return [Scores(losses[r].tolist(), errors[r].tolist()) for r in range(len(self.cfgs))]

    def _stack_split(self, split: str, t: int) -> tuple[Tensor, Tensor, Tensor]:
        parts = [ts[t].split(split) for ts in self.task_sets]
        n = torch.tensor([x.shape[0] for x, _ in parts], device=self.device)
        x = _pad_stack([x for x, _ in parts]).to(self.device)
        return x, _pad_stack([y for _, y in parts]).to(self.device), n

    def _scores(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor, task: int
    ) -> tuple[Tensor, Tensor]:
        """One trial's loss and mistake (0/1) on every row of task ``task`` (vmapped over trials)."""
        with autocast(self.device, self.cfg.run.precision):
            z = functional_call(self.base, (params, buffers), ([x],), {"tasks": [task]})[0].float()
        dec = self.base.decoders
        return dec.row_losses(task, z, y), (dec.predict(task, z) != y).float()

    def weights(self, r: int) -> dict[str, Tensor]:
        """Trial ``r``'s state_dict (copies)."""
        state = {k: v[r].detach().clone() for k, v in self.params.items()}
        state.update({k: v[r].clone() for k, v in self.buffers.items()})
        return state

    def net(self, r: int, state: dict[str, Tensor] | None = None) -> MultiTaskNet:
        """:attr:`view` holding trial ``r``'s current weights (or ``state``)."""
        self.view.load_state_dict(self.weights(r) if state is None else state, strict=True)
        return self.view

    def scores(self, r: int, net: MultiTaskNet, split: str) -> Scores:
        return evaluate(net, self.task_sets[r], split, precision=self.cfgs[r].run.precision)

    def names(self, r: int) -> list[str]:
        return [t.name for t in self.task_sets[r]]

    def train(self) -> None:
        self.base.train()

    def flush_checks(self) -> None:
        self.guard.flush()

    def result_extras(self, r: int, test: Scores) -> dict[str, Any]:
        return {"vectorised_trials": self.runs}


def train_trials(
    cfgs: Sequence[Config],
    outs: Sequence[str | Path],
    task_sets: Sequence[Sequence[TaskData]],
    build: Build,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Train the trials ``cfgs`` (configs that differ only in ``seed``) on their ``task_sets`` as
    one vectorised model (``build`` makes one trial's net) into ``outs``; returns each trial's
    result (also in ``out/result.json``). A group writes nothing until it has finished."""
    check_stackable(cfgs)
    if not len(cfgs) == len(outs) == len(task_sets):
        raise ValueError(f"got {len(cfgs)} configs, {len(outs)} outputs and {len(task_sets)} task sets")
    folders = [Path(o) for o in outs]
    for out in folders:
        if RunDir(out).started():
            raise FileExistsError(f"{out} already holds a run; choose another output folder")
        RunDir(out).check_writable(create=False)  # a group writes nothing until it has finished
    if cfgs[0].run.threads:
        torch.set_num_threads(cfgs[0].run.threads)
    learner = StackedTrials(cfgs, task_sets, build)
    logs: list[RunLog] = [BufferedLog(o, learner.names(r), preprocessing_of(task_sets[r]))
                          for r, o in enumerate(folders)]
    monitors: list[health.Monitor | None] = [
        health.Monitor(ts, c.optim.steps, name=str(o)) for c, ts, o in zip(cfgs, task_sets, folders)
    ]
    return Trainer(learner, folders, logs, monitors, quiet=quiet).run()
