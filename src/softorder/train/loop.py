"""The training loop (Sec. 4): every step draws one batch from EVERY task (smaller tasks cycle),
the loss is the sum over tasks of each task's mean loss, Adam updates layers, S and heads jointly.

Every ``eval_every`` steps the validation split of each task is evaluated; the weights with the
best mean validation metric are kept and the test split is scored with them at the end.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor
from tqdm import tqdm

from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, write_json
from softorder.train.config import Config
from softorder.train.metrics import as_input, autocast, evaluate


class TrainingDiverged(RuntimeError):
    """A task's loss became NaN or inf."""


class TaskSampler:
    """Draws batches of one task's training rows without replacement, reshuffling each epoch."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1:
            raise ValueError("a task has no training rows")
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.perm, self.pos = torch.randperm(n, generator=self.gen), 0

    def next(self) -> Tensor:
        out = []
        need = self.batch_size
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


def make_optimizer(net: MultiTaskNet, cfg: Config) -> torch.optim.Optimizer:
    """Adam; S is its own group (its own learning rate ``s_lr``, no weight decay)."""
    s_params = list(net.ordering_parameters())
    s_ids = {id(p) for p in s_params}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in s_ids]
    groups: list[dict[str, Any]] = [{"params": rest, "weight_decay": cfg.weight_decay, "name": "net"}]
    if s_params:
        groups.append({"params": s_params, "lr": cfg.s_lr or cfg.lr, "weight_decay": 0.0, "name": "S"})
    try:  # the fused kernel is ~3x faster than foreach for many small per-task tensors
        return torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):  # older torch or a device without fused Adam
        return torch.optim.Adam(groups, lr=cfg.lr, foreach=True)


class Trainer:
    """One run in ``out`` (``config.yaml``, ``metrics.jsonl``, ``tb/``, ``checkpoint.pt``,
    ``result.json``)."""

    def __init__(
        self, cfg: Config, net: MultiTaskNet, tasks: Sequence[TaskData], out: Path, quiet: bool = False
    ) -> None:
        if cfg.checkpoint_every % cfg.eval_every:
            raise ValueError(
                f"checkpoint_every ({cfg.checkpoint_every}) must be a multiple of "
                f"eval_every ({cfg.eval_every})"
            )
        if len(tasks) != net.num_tasks:
            raise ValueError(f"the net has {net.num_tasks} tasks but {len(tasks)} were given")
        self.cfg, self.net, self.tasks, self.out, self.quiet = cfg, net, list(tasks), Path(out), quiet
        self.device = torch.device(cfg.device)
        self.net.to(self.device)
        self.opt = make_optimizer(net, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.samplers = [
            TaskSampler(t.x_train.shape[0], cfg.batch_size, cfg.seed * 1000 + i) for i, t in enumerate(tasks)
        ]
        self.train_x = [t.x_train.to(self.device) for t in tasks]
        self.train_y = [t.y_train.to(self.device) for t in tasks]
        for i, y in enumerate(self.train_y):
            self.net.decoders.check_target(i, y)
        self.step = 0
        self.best: dict[str, Any] = {"score": math.inf, "step": 0, "state": None}

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "best": self.best,
            "samplers": [s.state_dict() for s in self.samplers],
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }

    def resume(self) -> None:
        ckpt = load_checkpoint(self.out / CHECKPOINT)
        self.net.load_state_dict(ckpt["model"], strict=True)
        self.opt.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.best = int(ckpt["step"]), ckpt["best"]
        for s, st in zip(self.samplers, ckpt["samplers"], strict=True):
            s.load_state_dict(st)
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"]:
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        # Forget metrics logged after the checkpoint: they will be recomputed identically.
        log = self.out / "metrics.jsonl"
        if log.exists():
            keep = [ln for ln in log.read_text().splitlines() if ln and json.loads(ln)["step"] <= self.step]
            log.write_text("".join(ln + "\n" for ln in keep))

    # -- the loop ----------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        xs, ys = [], []
        for sampler, x, y in zip(self.samplers, self.train_x, self.train_y):
            idx = sampler.next().to(self.device)
            xs.append(as_input(x[idx]))
            ys.append(y[idx])
        with autocast(self.device, self.cfg.precision):
            logits = [z.float() for z in self.net(xs)]
        losses = self.net.losses(logits, ys, check=False)  # labels checked in __init__
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(losses.sum()).backward()
        bad = ~torch.isfinite(losses)
        if bool(bad.any()):
            t = int(bad.nonzero()[0, 0])
            raise TrainingDiverged(
                f"loss of task {t} ({self.tasks[t].name}) is {float(losses[t].detach())} "
                f"at step {self.step + 1}; "
                f"the last good checkpoint is {self.out / CHECKPOINT} (try a lower lr)"
            )
        self.scaler.step(self.opt)
        self.scaler.update()
        return losses.detach()

    def run(self) -> dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter

        cfg, out = self.cfg, self.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        writer = SummaryWriter(str(out / "tb"), purge_step=self.step + 1 if self.step else None)
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=self.quiet or not sys.stderr.isatty(),
            desc=f"{cfg.benchmark}/{cfg.ordering}",
            dynamic_ncols=True,
        )
        acc, n_acc, start = torch.zeros(len(self.tasks), device=self.device), 0, time.perf_counter()
        self.net.train()
        with open(out / "metrics.jsonl", "a") as log:
            while self.step < cfg.steps:
                acc += self.train_step()
                n_acc += 1
                self.step += 1
                bar.update(1)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
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
                        save_checkpoint(out / CHECKPOINT, self.state())
        bar.close()
        writer.close()
        return self.finish(time.perf_counter() - start)

    def evaluate_and_select(self, train_loss: Tensor, elapsed: float) -> dict[str, Any]:
        val_loss, val_error = evaluate(self.net, self.tasks, "val", precision=self.cfg.precision)
        mvl, mve = sum(val_loss) / len(val_loss), sum(val_error) / len(val_error)
        score = mvl if self.cfg.select == "val_loss" else mve
        if score < self.best["score"]:
            state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            self.best = {"score": score, "step": self.step, "state": state}
        s = self.net.mixing_weights()
        return {
            "step": self.step,
            "time": elapsed,
            "train_loss": train_loss.tolist(),
            "val_loss": val_loss,
            "val_error": val_error,
            "mean_val_loss": mvl,
            "mean_val_error": mve,
            "S": s.tolist() if s is not None else None,
        }

    def log_tensorboard(self, writer: Any, rec: dict[str, Any]) -> None:
        step = rec["step"]
        writer.add_scalar("val/mean_error", rec["mean_val_error"], step)
        writer.add_scalar("val/mean_loss", rec["mean_val_loss"], step)
        writer.add_scalar("train/mean_loss", sum(rec["train_loss"]) / len(rec["train_loss"]), step)
        for t, task in enumerate(self.tasks):
            writer.add_scalar(f"val_error/{task.name}", rec["val_error"][t], step)
            writer.add_scalar(f"train_loss/{task.name}", rec["train_loss"][t], step)

    def finish(self, elapsed: float) -> dict[str, Any]:
        final = copy.deepcopy(self.net.state_dict())
        self.net.load_state_dict(self.best["state"])
        test_loss, test_error = evaluate(self.net, self.tasks, "test", precision=self.cfg.precision)
        val_loss, val_error = evaluate(self.net, self.tasks, "val", precision=self.cfg.precision)
        torch.save(self.best["state"], self.out / "best.pt")
        self.net.load_state_dict(final)
        result = {
            "benchmark": self.cfg.benchmark,
            "ordering": self.cfg.ordering,
            "seed": self.cfg.seed,
            "task_names": [t.name for t in self.tasks],
            "best_step": self.best["step"],
            "steps": self.step,
            "test_loss": test_loss,
            "test_error": test_error,
            "mean_test_loss": sum(test_loss) / len(test_loss),
            "mean_test_error": sum(test_error) / len(test_error),
            "val_loss": val_loss,
            "val_error": val_error,
            "mean_val_loss": sum(val_loss) / len(val_loss),
            "mean_val_error": sum(val_error) / len(val_error),
            "train_time_s": elapsed,
        }
        write_json(self.out / "result.json", result)
        return result


def train(
    cfg: Config,
    out: str | Path,
    tasks: Sequence[TaskData] | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train one run of ``cfg`` into ``out``; returns the result (also in ``out/result.json``)."""
    from softorder.experiments.benchmarks import build_net, load_tasks

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tasks = list(tasks) if tasks is not None else load_tasks(cfg)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg, tasks)
    trainer = Trainer(cfg, net, tasks, Path(out), quiet=quiet)
    if resume:
        trainer.resume()
    elif (Path(out) / CHECKPOINT).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume {out} or choose another --out")
    return trainer.run()
