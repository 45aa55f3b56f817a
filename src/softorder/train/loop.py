"""The training loop (Sec. 4): every step draws one batch from EVERY task (smaller tasks cycle),
the loss is the sum over tasks of each task's mean loss, Adam updates layers, S and heads jointly.

Every ``eval_every`` steps the validation split of each task is evaluated; the weights with the
best mean validation metric are kept and the test split is scored with them at the end.

Under ``torchrun`` (several processes) the model is wrapped in DistributedDataParallel. Every rank
draws the same global batch of ``world_size × batch_size`` rows per task and trains on its own slice
of it, so a run on N processes follows the run of one process with N times the batch. Rank 0 alone
evaluates (the others wait at a barrier) and writes the run directory; see ``distributed.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train import distributed, health
from softorder.train.accel import wrap_model
from softorder.train.checkpoint import load_checkpoint, save_checkpoint, write_json
from softorder.train.config import Config, check_resume
from softorder.train.metrics import as_input, autocast, evaluate, run_result, validation_record
from softorder.train.optim import apply_optimizer_settings, make_optimizer
from softorder.train.rundir import RunDir


class TrainingDiverged(RuntimeError):
    """A task's loss became NaN or inf."""


def check_losses(
    losses: Tensor, names: Sequence[str], step: int, checkpoint: Path | None, what: str = "task"
) -> None:
    """Raise :class:`TrainingDiverged` naming the first task whose loss is NaN or inf
    (``checkpoint``: where the run keeps its checkpoint; None: it keeps none)."""
    bad = ~torch.isfinite(losses.detach())
    if bool(bad.any()):
        t = int(bad.nonzero()[0, 0])
        written = checkpoint is not None and checkpoint.exists()
        kept = f"the last good checkpoint is {checkpoint}" if written else "no checkpoint was written"
        raise TrainingDiverged(
            f"loss of {what} {t} ({names[t]}) is {float(losses[t].detach())} at step {step}; "
            f"{kept} (try a lower lr)"
        )


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

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.gen.set_state(s["gen"])
        self.perm, self.pos = s["perm"], int(s["pos"])


class Trainer:
    """One run in ``out`` (``config.yaml``, ``metrics.jsonl``, ``tb/``, ``checkpoint.pt``,
    ``result.json``)."""

    def __init__(
        self, cfg: Config, net: MultiTaskNet, tasks: Sequence[TaskData], out: Path, quiet: bool = False
    ) -> None:
        if len(tasks) != net.num_tasks:
            raise ValueError(f"the net has {net.num_tasks} tasks but {len(tasks)} were given")
        self.cfg, self.net, self.tasks, self.out, self.quiet = cfg, net, list(tasks), Path(out), quiet
        self.run_dir = RunDir(out)
        self.device = distributed.select_device(cfg.device)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.net.to(self.device)
        # What the training step calls (DDP / compile / channels-last); self.net stays unwrapped.
        self.model = wrap_model(self.net, cfg, self.device)
        if self.rank:  # distinct dropout masks per rank (rank 0 keeps the single-process stream)
            torch.manual_seed(distributed.rank_seed(cfg.seed, self.rank))
        self.opt = make_optimizer(net, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.samplers = [
            TaskSampler(t.x_train.shape[0], cfg.batch_size, cfg.seed * 1000 + i, self.rank, self.world_size)
            for i, t in enumerate(tasks)
        ]
        self.train_x = [t.x_train.to(self.device) for t in tasks]
        self.train_y = [t.y_train.to(self.device) for t in tasks]
        for i, y in enumerate(self.train_y):
            self.net.decoders.check_target(i, y)
        self.step = 0
        self.best: dict[str, Any] = {"score": math.inf, "step": 0, "state": None}
        self.health = health.Monitor(self.tasks, cfg.steps, name=str(out))

    # -- checkpoints -------------------------------------------------------------------------
    def _cuda_rng(self) -> list[Tensor]:
        if self.device.type != "cuda":
            return []
        if self.world_size == 1:
            return torch.cuda.get_rng_state_all()
        return [torch.cuda.get_rng_state(self.device)]  # only this rank's GPU

    def state(self) -> dict[str, Any]:
        """The checkpoint. Collective under torchrun (every rank's RNG state is gathered): call it
        on every rank; only rank 0's copy is written."""
        rngs = distributed.all_gather_object((torch.get_rng_state(), self._cuda_rng()))
        state = {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "samplers": [s.state_dict() for s in self.samplers],  # the same on every rank
            "torch_rng": rngs[0][0],
            "config": self.cfg.to_dict(),
            "cuda_rng": rngs[0][1],
            "world_size": self.world_size,
        }
        if self.world_size > 1:
            state["rank_rng"] = rngs
        return state

    def save(self) -> None:
        """Write ``checkpoint.pt`` from rank 0 (collective: call it on every rank)."""
        state = self.state()
        if self.rank == 0:
            save_checkpoint(self.run_dir.checkpoint, state)

    def resume(self, ckpt: dict[str, Any] | None = None) -> None:
        """Continue from ``checkpoint.pt``. Rank 0 reads it and hands it to every rank (no shared
        file system needed); a checkpoint of any world size loads, bit-for-bit when the world size
        is the same. The global batch is ``world_size × batch_size``: keep it equal to continue the
        same run (e.g. ``--set batch_size=64`` on 1 process for a run of 2 × 32). ``ckpt``: the
        checkpoint, when the caller has already read it (on every rank)."""
        if ckpt is None:
            ckpt = distributed.on_main(lambda: load_checkpoint(self.run_dir.checkpoint))
        changed = check_resume(ckpt["config"], self.cfg, int(ckpt["step"]))
        self.net.load_state_dict(ckpt["model"], strict=True)
        self.opt.load_state_dict(ckpt["optimizer"])
        apply_optimizer_settings(self.opt, self.cfg)
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.best = int(ckpt["step"]), ckpt["best"]
        for s, st in zip(self.samplers, ckpt["samplers"], strict=True):
            s.load_state_dict(st)
        saved_world = int(ckpt.get("world_size", 1))
        rngs = ckpt.get("rank_rng") or [(ckpt["torch_rng"], ckpt["cuda_rng"])]
        if saved_world == self.world_size or self.rank == 0:
            cpu_rng, cuda_rng = rngs[self.rank] if saved_world == self.world_size else rngs[0]
            torch.set_rng_state(cpu_rng)
            if cuda_rng and self.device.type == "cuda":
                if self.world_size > 1:  # this rank's GPU only (rank 0's list starts with cuda:0)
                    torch.cuda.set_rng_state(cuda_rng[0], self.device)
                else:
                    torch.cuda.set_rng_state_all(cuda_rng)
        else:  # a rank the checkpoint did not have: a fresh stream, distinct per rank and step
            torch.manual_seed(distributed.rank_seed(self.cfg.seed, self.rank, self.step))
        if self.rank == 0:
            if changed:
                old = ckpt["config"]
                said = ", ".join(f"{k} {old.get(k)!r} -> {getattr(self.cfg, k)!r}" for k in changed)
                print(f"softorder: resuming with {said} (recorded in config.yaml)", file=sys.stderr)
            if saved_world != self.world_size:
                print(
                    f"softorder: resuming a checkpoint of {saved_world} process(es) on {self.world_size}: "
                    f"the global batch per task is now {self.world_size} × {self.cfg.batch_size}",
                    file=sys.stderr,
                )
            # Forget metrics logged after the checkpoint: they will be recomputed identically.
            self.run_dir.trim_metrics(self.step)
        self.health.restore(distributed.on_main(self.run_dir.read_metrics))

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One step; returns each task's loss (averaged over ranks under torchrun)."""
        xs, ys = [], []
        for sampler, x, y in zip(self.samplers, self.train_x, self.train_y):
            idx = sampler.next().to(self.device)
            xs.append(as_input(x[idx]))
            ys.append(y[idx])
        with autocast(self.device, self.cfg.precision):
            logits = [z.float() for z in self.model(xs)]
        losses = self.net.losses(logits, ys, check=False)  # labels checked in __init__
        self.opt.zero_grad(set_to_none=True)
        if self.world_size > 1:  # every rank sees the global losses: all stop together on NaN
            seen = losses.detach().clone()
            work = distributed.all_reduce_mean(seen, async_op=True)  # overlaps the backward
        else:
            seen = losses
        self.scaler.scale(losses.sum()).backward()
        if self.world_size > 1:
            distributed.finish_mean(seen, work)
        check_losses(seen, [t.name for t in self.tasks], self.step + 1, self.run_dir.checkpoint)
        self.scaler.step(self.opt)
        self.scaler.update()
        return seen.detach()

    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` and return the result (on every rank; rank 0 writes the files)."""
        from torch.utils.tensorboard import SummaryWriter

        cfg, main = self.cfg, self.rank == 0
        writer: Any = None
        if main:
            self.run_dir.write_config(cfg.to_dict())
            writer = SummaryWriter(str(self.run_dir.tb), purge_step=self.step + 1 if self.step else None)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=self.quiet or not main or not sys.stderr.isatty(),
            desc=f"{cfg.benchmark}/{cfg.ordering}",
            dynamic_ncols=True,
        )
        acc, n_acc, start = torch.zeros(len(self.tasks), device=self.device), 0, time.perf_counter()
        self.model.train()
        with open(self.run_dir.metrics, "a") if main else contextlib.nullcontext() as log:
            while self.step < cfg.steps:
                acc += self.train_step()
                n_acc += 1
                self.step += 1
                bar.update(1)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    if main:  # the other ranks wait at the barrier below
                        rec = self.evaluate_and_select(acc / n_acc, time.perf_counter() - start)
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                        self.log_tensorboard(writer, rec)
                        bar.set_postfix(
                            val_err=f"{rec['mean_val_error']:.3f}", train=f"{float(acc.mean() / n_acc):.3f}"
                        )
                    acc.zero_()
                    n_acc = 0
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.save()
                    distributed.barrier()
        bar.close()
        if writer is not None:
            writer.close()
        elapsed = time.perf_counter() - start
        return distributed.on_main(lambda: self.finish(elapsed))

    def evaluate_and_select(self, train_loss: Tensor, elapsed: float) -> dict[str, Any]:
        val = evaluate(self.net, self.tasks, "val", precision=self.cfg.precision)
        rec = validation_record(self.step, elapsed, train_loss, val, self.net)
        self.health.update(self.net, rec)
        score = rec["mean_val_loss"] if self.cfg.select == "val_loss" else rec["mean_val_error"]
        if score < self.best["score"]:
            state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            self.best = {"score": score, "step": self.step, "state": state}
        return rec

    def log_tensorboard(self, writer: Any, rec: dict[str, Any]) -> None:
        log_tensorboard(writer, rec, [t.name for t in self.tasks])

    def finish(self, elapsed: float) -> dict[str, Any]:
        final = copy.deepcopy(self.net.state_dict())
        result = finish_run(
            self.cfg, self.net, self.tasks, self.out, self.best, self.step, elapsed,
            health=self.health.result(),
        )
        self.net.load_state_dict(final)
        return result


def log_tensorboard(writer: Any, rec: dict[str, Any], task_names: Sequence[str]) -> None:
    """One validation record (``metrics.jsonl`` line) as TensorBoard scalars."""
    step = rec["step"]
    writer.add_scalar("val/mean_error", rec["mean_val_error"], step)
    writer.add_scalar("val/mean_loss", rec["mean_val_loss"], step)
    writer.add_scalar("train/mean_loss", sum(rec["train_loss"]) / len(rec["train_loss"]), step)
    for t, name in enumerate(task_names):
        writer.add_scalar(f"val_error/{name}", rec["val_error"][t], step)
        writer.add_scalar(f"train_loss/{name}", rec["train_loss"][t], step)
    if rec.get("health"):
        health.log_tensorboard(writer, rec["health"], step)


def finish_run(
    cfg: Config,
    net: MultiTaskNet,
    tasks: Sequence[TaskData],
    out: Path,
    best: dict[str, Any],
    steps: int,
    elapsed: float,
    **extra: Any,
) -> dict[str, Any]:
    """Score the best-on-validation weights ``best["state"]`` (loaded into ``net``) on test and
    validation, write ``best.pt`` and ``result.json`` (last: its presence marks a finished run)."""
    run = RunDir(out)
    net.load_state_dict(best["state"])
    test = evaluate(net, tasks, "test", precision=cfg.precision)
    val = evaluate(net, tasks, "val", precision=cfg.precision)
    save_checkpoint(run.best, best["state"])
    names = [t.name for t in tasks]
    result = run_result(cfg.benchmark, cfg.ordering, cfg.seed, names, best["step"], steps, test, val, elapsed)
    result.update(extra)
    write_json(run.result, result)
    return result


def train(
    cfg: Config,
    out: str | Path,
    tasks: Sequence[TaskData] | None = None,
    resume: bool = False,
    quiet: bool = False,
    clean: bool = False,
) -> dict[str, Any]:
    """Train one run of ``cfg`` into ``out``; returns the result (also in ``out/result.json``).

    A fresh run refuses a folder that holds another run's files, or (``clean=True``, for folders
    the caller owns) removes them first. Launched by torchrun with several processes, this joins
    the process group and trains with DistributedDataParallel (every rank returns rank 0's
    result; only rank 0 writes ``out``)."""
    if cfg.benchmark == "celeba":  # one image batch for all 40 attribute tasks (Sec. 4.4)
        from softorder.train.celeba import train_celeba

        return train_celeba(cfg, out, resume=resume, quiet=quiet, clean=clean)
    distributed.require_device(cfg.device)
    created, finished = distributed.setup(cfg.device), False
    try:
        # The trainer and its DDP model (which holds the process group) live in _train only, so
        # they are gone when teardown frees the group (also when _train raised: its frames go).
        result = _train(cfg, Path(out), tasks, resume, quiet, clean)
        finished = True
    except BaseException as e:
        traceback.clear_frames(e.__traceback__)
        raise
    finally:
        distributed.teardown(created, finished)
    return result


def _train(
    cfg: Config, out: Path, tasks: Sequence[TaskData] | None, resume: bool, quiet: bool, clean: bool
) -> dict[str, Any]:
    from softorder.experiments.benchmarks import build_net, load_tasks

    out = Path(distributed.broadcast_object(str(out)))  # rank 0's directory (default names hold a time)
    run = RunDir(out)
    # the checkpoint is read (and checked against cfg) once, on rank 0, before any data
    ckpt = distributed.on_main(lambda: _check_resumable(run, cfg) if resume else run.start_fresh(clean))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tasks = list(tasks) if tasks is not None else load_tasks(cfg)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg, tasks)
    trainer = Trainer(cfg, net, tasks, out, quiet=quiet)
    if resume:
        trainer.resume(ckpt)
    return trainer.run()


def _check_resumable(run: RunDir, cfg: Config) -> dict[str, Any]:
    """Before any data is read: the checkpoint, which exists and whose config ``cfg`` changes
    only in what a resume can change."""
    run.check_writable()
    ckpt = load_checkpoint(run.checkpoint)
    check_resume(ckpt["config"], cfg, int(ckpt["step"]))
    return ckpt
