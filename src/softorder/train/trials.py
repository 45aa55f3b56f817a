"""Many small runs at once: the trials of one method trained as ONE vectorised model.

``softorder compare`` runs every method several times with seeds ``seed + k``. For small models
(UCI, MNIST) one training step is a few milliseconds of Python and kernel launches, so running
the R trials one after another wastes the machine. Here the R networks are stacked
(``torch.func.stack_module_state``) and one step runs all of them under ``torch.func.vmap``.

Each trial is still its own run: its own data split and task draw, its own initialisation (built
exactly as :func:`softorder.train.loop.train` builds it), its own batches (the same
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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.nn.orderings import HardOrdering
from softorder.train import distributed, health
from softorder.train.config import Config
from softorder.train.loop import TaskSampler, check_losses, finish_run, log_tensorboard
from softorder.train.metrics import as_input, autocast, evaluate, validation_record
from softorder.train.optim import group_settings
from softorder.train.rundir import RunDir


def check_stackable(cfgs: Sequence[Config]) -> None:
    """Trials can share one vectorised model only if their configs differ in ``seed`` alone."""
    if not cfgs:
        raise ValueError("no trials to run")
    first = cfgs[0].replace(seed=0)
    for c in cfgs[1:]:
        if c.replace(seed=0) != first:
            diff = sorted(k for k, v in c.to_dict().items() if k != "seed" and first.to_dict()[k] != v)
            raise ValueError(f"vectorised trials must differ only in seed; these also differ: {diff}")
    if len({c.seed for c in cfgs}) != len(cfgs):
        raise ValueError(f"vectorised trials need distinct seeds, got {[c.seed for c in cfgs]}")
    if first.benchmark == "celeba":
        raise ValueError("celeba trains through its own image pipeline; run its trials one by one")
    if distributed.world_size() > 1:
        raise ValueError("vectorised trials run in one process; do not launch them with torchrun")


def _pad_stack(parts: Sequence[Tensor]) -> Tensor:
    """Stack tensors whose first dimension differs, zero-padding to the longest: ``[R, n_max, ...]``."""
    n = max(p.shape[0] for p in parts)
    out = parts[0].new_zeros((len(parts), n, *parts[0].shape[1:]))
    for r, p in enumerate(parts):
        out[r, : p.shape[0]] = p
    return out


class TrialGroup:
    """R trials of one config (seeds differ) as one vectorised model; :meth:`run` trains them."""

    def __init__(
        self, cfgs: Sequence[Config], outs: Sequence[str | Path], task_sets: Sequence[Sequence[TaskData]]
    ) -> None:
        check_stackable(cfgs)
        if not len(cfgs) == len(outs) == len(task_sets):
            raise ValueError(f"got {len(cfgs)} configs, {len(outs)} outputs and {len(task_sets)} task sets")
        from softorder.experiments.benchmarks import build_net

        self.cfgs, self.outs = list(cfgs), [Path(o) for o in outs]
        self.task_sets = [list(ts) for ts in task_sets]
        for out in self.outs:
            if RunDir(out).started():
                raise FileExistsError(f"{out} already holds a run; choose another output folder")
            RunDir(out).check_writable(create=False)  # a group writes nothing until it has finished
        cfg = self.cfg = self.cfgs[0]
        self.device = distributed.select_device(cfg.device)
        self.nets: list[MultiTaskNet] = []
        for c, tasks in zip(self.cfgs, self.task_sets):
            torch.manual_seed(c.seed)  # the same initialisation as a sequential run of this seed
            self.nets.append(build_net(c, tasks).to(self.device))
        shapes = [{k: v.shape for k, v in n.state_dict().items()} for n in self.nets]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError(
                "the trials' networks differ in shape (task draws of other sizes); run them one by one"
            )
        for net, tasks in zip(self.nets, self.task_sets):
            for t, task in enumerate(tasks):
                net.decoders.check_target(t, task.y_train)
        self.params, self.buffers = stack_module_state(self.nets)  # type: ignore[arg-type]
        # The module whose code runs; vmap swaps in each trial's tensors (functional_call).
        self.base = self.nets[0]
        if isinstance(self.base.core, HardOrdering):
            self.base.core.use_orders_on_device()  # each trial's own `order` buffer (permuted)
        dec = type(self.base.decoders)
        self._custom_loss = not dec.standard_loss  # not cross-entropy: call the head's own loss
        self.view = copy.deepcopy(self.base)  # one trial's weights at a time, for evaluation
        self.opt = self._optimizer()
        self._step = vmap(self._losses, randomness="different")
        T, B = len(self.task_sets[0]), cfg.batch_size
        self.samplers = [
            [TaskSampler(ts[t].x_train.shape[0], B, c.seed * 1000 + t) for t in range(T)]
            for c, ts in zip(self.cfgs, self.task_sets)
        ]
        sets = self.task_sets
        self.train_x = [_pad_stack([ts[t].x_train for ts in sets]).to(self.device) for t in range(T)]
        self.train_y = [_pad_stack([ts[t].y_train for ts in sets]).to(self.device) for t in range(T)]
        self.trial_index = torch.arange(len(self.cfgs), device=self.device)[:, None]
        self._eval_sets: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        self.step = 0
        # What check_losses calls entry r * T + t of the flattened [trials, tasks] losses.
        self.run_names = [
            f"task {t} ({task.name}) in the trial with seed {c.seed}"
            for c, ts in zip(self.cfgs, self.task_sets)
            for t, task in enumerate(ts)
        ]

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam as :func:`softorder.train.optim.make_optimizer`, on the stacked tensors."""
        s_ids = {id(p) for p in self.base.ordering_parameters()}
        s_names = {name for name, p in self.base.named_parameters() if id(p) in s_ids}
        rest = [p for k, p in self.params.items() if p.requires_grad and k not in s_names]
        groups: list[dict[str, Any]] = [{"params": rest, **group_settings(self.cfg, "net")}]
        if s_names:
            s_params = [self.params[k] for k in sorted(s_names)]
            groups.append({"params": s_params, **group_settings(self.cfg, "S")})
        try:
            return torch.optim.Adam(groups, lr=self.cfg.lr, fused=True)
        except (RuntimeError, TypeError):
            return torch.optim.Adam(groups, lr=self.cfg.lr, foreach=True)

    def _losses(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], xs: list[Tensor], ys: list[Tensor]
    ) -> Tensor:
        """One trial's per-task losses (vmapped over trials)."""
        with autocast(self.device, self.cfg.precision):
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

    def train_step(self) -> Tensor:
        """One step of every trial; returns the losses ``[trials, tasks]``."""
        xs, ys = [], []
        for t, (x, y) in enumerate(zip(self.train_x, self.train_y)):
            idx = torch.stack([s[t].next() for s in self.samplers]).to(self.device)  # [R, B]
            xs.append(as_input(x[self.trial_index, idx]))
            ys.append(y[self.trial_index, idx])
        losses = self._step(self.params, self.buffers, xs, ys)
        self.opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.step += 1
        check_losses(losses.flatten(), self.run_names, self.step, None, what="stacked run")
        self.opt.step()
        return losses.detach()

    @torch.no_grad()
    def evaluate(self, split: str, chunk: int = 1024) -> list[tuple[list[float], list[float]]]:
        """Every trial's (per-task mean loss, per-task error) on ``split``, as
        :func:`softorder.train.metrics.evaluate` gives for one run, with all trials in one pass."""
        if self._custom_loss:  # evaluate one trial at a time
            return [evaluate(self.load_trial(r), ts, split, chunk, self.cfg.precision)
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
        return [(losses[r].tolist(), errors[r].tolist()) for r in range(len(self.cfgs))]

    def _stack_split(self, split: str, t: int) -> tuple[Tensor, Tensor, Tensor]:
        parts = [ts[t].split(split) for ts in self.task_sets]
        n = torch.tensor([x.shape[0] for x, _ in parts], device=self.device)
        x = _pad_stack([x for x, _ in parts]).to(self.device)
        return x, _pad_stack([y for _, y in parts]).to(self.device), n

    def _scores(
        self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor, task: int
    ) -> tuple[Tensor, Tensor]:
        """One trial's loss and mistake (0/1) on every row of task ``task`` (vmapped over trials)."""
        with autocast(self.device, self.cfg.precision):
            z = functional_call(self.base, (params, buffers), ([x],), {"tasks": [task]})[0].float()
        dec = self.base.decoders
        return dec.row_losses(task, z, y), (dec.predict(task, z) != y).float()

    def trial_state(self, r: int) -> dict[str, Tensor]:
        """Trial ``r``'s state_dict (copies)."""
        state = {k: v[r].detach().clone() for k, v in self.params.items()}
        state.update({k: v[r].clone() for k, v in self.buffers.items()})
        return state

    def load_trial(self, r: int) -> MultiTaskNet:
        """:attr:`view` holding trial ``r``'s current weights."""
        self.view.load_state_dict(self.trial_state(r), strict=True)
        return self.view

    def run(self, quiet: bool = True) -> list[dict[str, Any]]:
        """Train every trial to ``cfg.steps``; write each trial's run folder; return the results."""
        cfg, R = self.cfg, len(self.cfgs)
        records: list[list[dict[str, Any]]] = [[] for _ in range(R)]
        monitors = [health.Monitor(ts, cfg.steps, name=str(o)) for ts, o in zip(self.task_sets, self.outs)]
        best: list[dict[str, Any]] = [{"score": float("inf"), "step": 0, "state": None} for _ in range(R)]
        acc, n_acc, start = None, 0, time.perf_counter()
        self.base.train()
        while self.step < cfg.steps:
            losses = self.train_step()
            step = self.step
            acc = losses if acc is None else acc + losses
            n_acc += 1
            if step % cfg.eval_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - start
                vals = self.evaluate("val")
                for r in range(R):
                    rec = validation_record(step, elapsed, acc[r] / n_acc, vals[r], self.load_trial(r))
                    monitors[r].update(self.view, rec)
                    records[r].append(rec)
                    score = rec["mean_val_loss"] if cfg.select == "val_loss" else rec["mean_val_error"]
                    if score < best[r]["score"]:
                        best[r] = {"score": score, "step": step, "state": self.trial_state(r)}
                acc, n_acc = None, 0
                if not quiet:
                    mean = sum(rs[-1]["mean_val_error"] for rs in records) / R
                    print(f"  {cfg.ordering} x{R} step {step}/{cfg.steps}: mean val error {mean:.4f}")
        elapsed = time.perf_counter() - start
        return [self._write(r, records[r], best[r], elapsed, monitors[r].result()) for r in range(R)]

    def _write(
        self,
        r: int,
        records: list[dict[str, Any]],
        best: dict[str, Any],
        elapsed: float,
        flags: dict[str, Any],
    ) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        c, out, tasks = self.cfgs[r], self.outs[r], self.task_sets[r]
        run = RunDir(out)
        run.start_fresh(clean=True)  # leftovers of an interrupted group (no checkpoint: not resumable)
        run.write_config(c.to_dict())
        run.write_metrics(records)
        with SummaryWriter(str(run.tb)) as writer:
            for rec in records:
                log_tensorboard(writer, rec, [t.name for t in tasks])
        return finish_run(
            c, self.view, tasks, out, best, c.steps, elapsed, vectorised_trials=len(self.cfgs), health=flags
        )


def train_trials(
    cfgs: Sequence[Config],
    outs: Sequence[str | Path],
    task_sets: Sequence[Sequence[TaskData]] | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Train the trials ``cfgs`` (configs that differ only in ``seed``) as one vectorised model
    into ``outs``; returns each trial's result (also in ``out/result.json``)."""
    from softorder.experiments.benchmarks import load_tasks

    check_stackable(cfgs)
    if cfgs[0].threads:
        torch.set_num_threads(cfgs[0].threads)
    if task_sets is None:
        task_sets = []
        for c in cfgs:
            torch.manual_seed(c.seed)
            task_sets.append(load_tasks(c))
    return TrialGroup(cfgs, outs, task_sets).run(quiet=quiet)
