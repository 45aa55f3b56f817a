"""One network as a :class:`~softorder.train.trainer.Learner`: its batches from a
:class:`~softorder.train.sources.BatchSource`, its scores from an
:class:`~softorder.train.sources.Evaluator`, with DDP under torchrun, ``torch.compile``, mixed
precision and checkpoints that resume bit for bit (Sec. 4's training on one or many processes)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from softorder.nn.network import MultiTaskNet
from softorder.train import distributed
from softorder.train.accel import wrap_model
from softorder.train.config import Config
from softorder.train.graphs import WARM_UP_STEPS, Batch, GraphedStep
from softorder.train.metrics import Scores, autocast
from softorder.train.optim import apply_optimizer_settings, make_optimizer, warm_up
from softorder.train.sources import BatchSource, Evaluator
from softorder.train.trainer import Learner, LossGuard


class NetLearner(Learner):
    """One network trained on a :class:`BatchSource` (with DDP / compile / mixed precision as the
    config asks), scored by an :class:`Evaluator`."""

    resumable = True

    def __init__(self, cfg: Config, net: MultiTaskNet, source: BatchSource, evaluator: Evaluator,
                 task_names: Sequence[str], checkpoint: Path | None = None) -> None:
        self.runs, self.cfgs, self.cfg = 1, [cfg], cfg
        self.source, self.evaluator, self.task_names = source, evaluator, list(task_names)
        self.checkpoint = checkpoint
        self.device = distributed.select_device(cfg.run.device)
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self._net = net.to(self.device)
        # What the training step calls (DDP / compile / channels-last); the net stays unwrapped.
        self.model = wrap_model(net, cfg, self.device)
        if self.rank:  # distinct dropout masks per rank (rank 0 keeps the single-process stream)
            torch.manual_seed(distributed.rank_seed(cfg.seed, self.rank))
        if cfg.run.cuda_graphs and self.world_size > 1:
            raise ValueError("cuda_graphs runs one process; drop --set cuda_graphs=true under torchrun")
        self.opt = make_optimizer(net, cfg, capturable=cfg.run.cuda_graphs)
        self.graphed: GraphedStep | None = None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.run.precision == "fp16")
        source.to(self.device)
        source.check(net)
        self.guard = LossGuard(self.task_names, self.checkpoint, what=source.what)

    def train(self) -> None:
        self.model.train()

    def flush_checks(self) -> None:
        self.guard.flush()

    def train_step(self, step: int) -> Tensor:
        """One step; each task's loss (averaged over ranks under torchrun), ``[1, tasks]``."""
        xs, ys = self.source.next()
        if self.cfg.run.cuda_graphs:
            return self._graphed_step(step, xs, ys)
        losses = self._losses(xs, ys)
        self.opt.zero_grad(set_to_none=True)
        if self.world_size > 1:  # every rank sees the global losses: all stop together on NaN
            seen = losses.detach().clone()
            work = distributed.all_reduce_mean(seen, async_op=True)  # overlaps the backward
        else:
            seen = losses
        self.scaler.scale(losses.sum()).backward()
        if self.world_size > 1:
            distributed.finish_mean(seen, work)
        self.guard(seen, step)
        warm_up(self.opt, self.cfg, step)
        self.scaler.step(self.opt)
        self.scaler.update()
        self._net.core.advance()
        return seen.detach()[None]

    def _graphed_step(self, step: int, xs: Batch, ys: list[Tensor]) -> Tensor:
        """The step as a replayed CUDA graph (``cuda_graphs``, :mod:`softorder.train.graphs`); it is
        captured once the learning-rate warm-up is over (the rates are baked into the graph)."""
        if self.graphed is None:
            eager = max(WARM_UP_STEPS, self.cfg.optim.lr_warmup - step + 1)
            self.graphed = GraphedStep(self._plain_step, lambda: self.opt.zero_grad(set_to_none=True), eager,
                                       self.device)
        warm_up(self.opt, self.cfg, step)
        losses = self.graphed(xs, ys).clone()  # the graph overwrites its output at the next replay
        self._net.core.advance()
        self.guard(losses, step)
        return losses[None]

    def _losses(self, xs: Batch, ys: list[Tensor]) -> Tensor:
        """Each task's loss of the forward pass on ``xs`` (labels checked by the source)."""
        with autocast(self.device, self.cfg.run.precision):
            logits = [z.float() for z in self.model(xs)]
        return self._net.losses(logits, ys, check=False)

    def _plain_step(self, xs: Batch, ys: list[Tensor]) -> Tensor:
        """Forward, losses, backward, optimiser step: what :class:`GraphedStep` captures."""
        losses = self._losses(xs, ys)
        losses.sum().backward()
        self.opt.step()
        return losses.detach()

    def evaluate(self, split: str) -> list[Scores]:
        return [self.evaluator(self._net, split)]

    def net(self, r: int, state: dict[str, Tensor] | None = None) -> MultiTaskNet:
        if state is not None:
            self._net.load_state_dict(state)
        return self._net

    def weights(self, r: int) -> dict[str, Tensor]:
        return {k: v.detach().to("cpu", copy=True) if self.device.type != "cpu" else v.detach().clone()
                for k, v in self._net.state_dict().items()}

    def scores(self, r: int, net: MultiTaskNet, split: str) -> Scores:
        return self.evaluator(net, split)

    def names(self, r: int) -> list[str]:
        return self.task_names

    def record_extras(self, steps: int, elapsed: float) -> dict[str, Any]:
        key = self.source.throughput_key
        return {key: steps * self.source.rows_per_step() / max(elapsed, 1e-9)} if key else {}

    def result_extras(self, r: int, test: Scores) -> dict[str, Any]:
        return self.evaluator.result_extras(test)

    # -- checkpoints -------------------------------------------------------------------------
    def _cuda_rng(self) -> list[Tensor]:
        if self.device.type != "cuda":
            return []
        if self.world_size == 1:
            return torch.cuda.get_rng_state_all()
        return [torch.cuda.get_rng_state(self.device)]  # only this rank's GPU

    def state_dict(self) -> dict[str, Any]:
        """Collective under torchrun (every rank's RNG state is gathered): call it on every rank."""
        rngs = distributed.all_gather_object((torch.get_rng_state(), self._cuda_rng()))
        state = {
            "model": self._net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            **self.source.state_dict(),  # the same on every rank
            "torch_rng": rngs[0][0],
            "cuda_rng": rngs[0][1],
            "world_size": self.world_size,
        }
        if self.world_size > 1:
            state["rank_rng"] = rngs
        return state

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """A checkpoint of any world size loads, bit-for-bit when the world size is the same.
        The global batch is ``world_size × batch_size``: keep it equal to continue the same run."""
        self._net.load_state_dict(ckpt["model"], strict=True)
        self.opt.load_state_dict(ckpt["optimizer"])
        apply_optimizer_settings(self.opt, self.cfg)
        self.scaler.load_state_dict(ckpt["scaler"])
        self.source.load_state_dict(ckpt)
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
            torch.manual_seed(distributed.rank_seed(self.cfg.seed, self.rank, int(ckpt["step"])))
        if self.rank == 0 and saved_world != self.world_size:
            print(
                f"softorder: resuming a checkpoint of {saved_world} process(es) on {self.world_size}: "
                f"the global batch per task is now {self.world_size} × {self.cfg.optim.batch_size}",
                file=sys.stderr,
            )
