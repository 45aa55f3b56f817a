"""Training on CelebA: one image batch, 40 binary attribute tasks predicted on it (paper Sec. 4.4).

Unlike the multi-input loop (``loop.py``, one batch per task), every step here draws ONE batch of
images from the official train split and every attribute task predicts on it. The loss is the sum
over attributes of each attribute's mean binary cross-entropy (Sec. 3); Adam updates the backbone,
the core, S (its own learning rate ``s_lr``) and the decoders jointly. Every ``eval_every`` steps
the val split is scored (per-attribute loss and error); the best-on-validation weights are kept
and the test split is scored with them at the end (error, and accuracy = 1 - error, per attribute).

The run directory has the format of ``loop.py`` (config.yaml, metrics.jsonl, tb/, checkpoint.pt,
best.pt, result.json). Resume restores the model, optimizer, grad scaler, step, the best weights
and the RNG states exactly, but NOT the data order: a resumed run restarts the interrupted epoch
from its beginning (epoch ``e`` is shuffled by a generator seeded with the run's seed and ``e``),
so images of that epoch seen before the crash are seen again. (A checkpoint taken at the end of an
epoch with ``num_workers=0`` resumes bit-for-bit; with workers, the DataLoader's first iterator
draws a worker seed from the shuffle generator, so even then the order differs.) Training runs in
one process (no torchrun yet).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from softorder.data.celeba import CELEBA_ATTRIBUTES, celeba_loader
from softorder.nn.backbones import WEIGHTS_HELP, celeba_net
from softorder.nn.network import MultiTaskNet
from softorder.train import distributed
from softorder.train.accel import wrap_model
from softorder.train.checkpoint import load_checkpoint, save_checkpoint, write_json
from softorder.train.config import Config, check_resume
from softorder.train.loop import check_losses
from softorder.train.metrics import autocast, run_result, validation_record
from softorder.train.optim import apply_optimizer_settings, make_optimizer
from softorder.train.rundir import RunDir

Batch = tuple[Tensor, Tensor]


def celeba_loaders(cfg: Config, device: torch.device) -> dict[str, DataLoader[Batch]]:
    """Train (shuffled, seeded, drop_last) / val / test loaders of the official CelebA splits.

    ``max_train_per_task`` and ``max_eval_per_task`` keep the first N images of the train and of
    the val / test splits (CPU smoke runs); None keeps every image.
    """
    if cfg.num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {cfg.num_workers}")
    pin = device.type == "cuda"
    common = dict(num_workers=cfg.num_workers, pin_memory=pin, image_size=cfg.image_size)
    loaders: dict[str, DataLoader[Batch]] = {}
    for split, limit in (("train", cfg.max_train_per_task), ("val", cfg.max_eval_per_task),
                         ("test", cfg.max_eval_per_task)):
        train = split == "train"
        gen = torch.Generator().manual_seed(cfg.seed) if train else None
        loader = celeba_loader(cfg.data_dir or _default_root(), split, cfg.batch_size, shuffle=train,
                               drop_last=train, generator=gen, **common)  # type: ignore[arg-type]
        n = len(loader.dataset)  # type: ignore[arg-type]
        if limit is not None and limit < n:
            loader = DataLoader(Subset(loader.dataset, range(limit)), batch_size=cfg.batch_size,
                                shuffle=train, num_workers=cfg.num_workers, pin_memory=loader.pin_memory,
                                persistent_workers=cfg.num_workers > 0, drop_last=train, generator=gen)
            n = limit
        if n == 0 or (train and n < cfg.batch_size):
            raise ValueError(f"CelebA {split} split has {n} image(s) but batch_size is {cfg.batch_size}: "
                             f"lower batch_size (or raise max_train_per_task / max_eval_per_task)")
        loaders[split] = loader
    return loaders


def _default_root() -> Path:
    from softorder.data.download import resolve_data_dir

    return resolve_data_dir(None)


@torch.no_grad()
def evaluate_celeba(
    net: MultiTaskNet, loader: DataLoader[Batch], device: torch.device, precision: str = "fp32",
    channels_last: bool = False,
) -> tuple[list[float], list[float]]:
    """Mean BCE and error rate (fraction wrong) of each attribute task over ``loader``."""
    was_training = net.training
    net.eval()
    loss_sum = torch.zeros(net.num_tasks, device=device, dtype=torch.float64)
    wrong = torch.zeros(net.num_tasks, device=device, dtype=torch.int64)
    n = 0
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last, net.num_tasks)
        with autocast(device, precision):
            logits = [z.float() for z in net(x)]
        targets = list(y.unbind(1))
        loss_sum += net.losses(logits, targets, check=False).double() * y.shape[0]
        wrong += (torch.stack(net.predict(logits), 1) != y).sum(0)
        n += y.shape[0]
    net.train(was_training)
    n = max(n, 1)
    return (loss_sum / n).tolist(), (wrong.double() / n).tolist()


def _to_device(x: Tensor, y: Tensor, device: torch.device, channels_last: bool, tasks: int) -> Batch:
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y[:, :tasks].to(device, non_blocking=True)


class CelebATrainer:
    """One CelebA run in ``out`` (the files of ``loop.Trainer``; Sec. 4.4)."""

    def __init__(self, cfg: Config, net: MultiTaskNet, out: Path, quiet: bool = False) -> None:
        self.cfg, self.net, self.out, self.quiet = cfg, net, Path(out), quiet
        self.run_dir = RunDir(out)
        self.device = distributed.select_device(cfg.device)
        self.net.to(self.device)
        if cfg.channels_last:  # the conv backbone on NHWC activations (tensor cores)
            self.net.encoders.to(memory_format=torch.channels_last)  # type: ignore[call-arg]
        self.model = wrap_model(self.net, cfg, self.device)  # torch.compile when cfg.compile
        self.opt = make_optimizer(net, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.names = list(CELEBA_ATTRIBUTES[: net.num_tasks])
        self.loaders = celeba_loaders(cfg, self.device)
        self.gen: torch.Generator = self.loaders["train"].generator  # type: ignore[assignment]
        self.step, self.epoch = 0, 0
        self._batches: Iterator[Batch] | None = None
        self._left = 0  # batches left in the current epoch
        self.best: dict[str, Any] = {"score": math.inf, "step": 0, "state": None}

    # -- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "best": self.best,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "config": self.cfg.to_dict(),
        }

    def resume(self) -> None:
        """Continue from ``checkpoint.pt``; the interrupted epoch restarts (see the module doc)."""
        ckpt = load_checkpoint(self.run_dir.checkpoint)
        check_resume(ckpt["config"], self.cfg, int(ckpt["step"]))
        self.net.load_state_dict(ckpt["model"], strict=True)
        self.opt.load_state_dict(ckpt["optimizer"])
        apply_optimizer_settings(self.opt, self.cfg)
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.best = int(ckpt["step"]), int(ckpt["epoch"]), ckpt["best"]
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        self.run_dir.trim_metrics(self.step)  # forget records logged after the checkpoint

    # -- the loop ----------------------------------------------------------------------------
    def next_batch(self) -> Batch:
        """The next training batch; a new epoch reseeds the shuffle with (seed, epoch). The epoch
        counts as done with its last batch, so a checkpoint taken then resumes with the next one."""
        loader = self.loaders["train"]
        if self._batches is None:
            self.gen.manual_seed(self.cfg.seed * 1_000_003 + self.epoch)
            self._batches, self._left = iter(loader), len(loader)
        batch = next(self._batches)
        self._left -= 1
        if self._left == 0:
            self._batches, self.epoch = None, self.epoch + 1
        return batch

    def train_step(self) -> Tensor:
        """One step on one image batch; returns each attribute's mean BCE ``[T]``."""
        x, y = _to_device(*self.next_batch(), self.device, self.cfg.channels_last, self.net.num_tasks)
        with autocast(self.device, self.cfg.precision):
            logits = [z.float() for z in self.model(x)]
        # labels come from read_celeba_attributes, which admits only 0 / 1
        losses = self.net.losses(logits, list(y.unbind(1)), check=False)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(losses.sum()).backward()
        ckpt = self.run_dir.checkpoint
        check_losses(losses, self.names, self.step + 1, ckpt if ckpt.exists() else None, what="attribute")
        self.scaler.step(self.opt)
        self.scaler.update()
        return losses.detach()

    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps``; write the run directory and return the result."""
        from torch.utils.tensorboard import SummaryWriter

        cfg, run = self.cfg, self.run_dir
        run.write_config(cfg.to_dict())
        writer = SummaryWriter(str(run.tb), purge_step=self.step + 1 if self.step else None)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"celeba/{cfg.ordering}", dynamic_ncols=True,
                   disable=self.quiet or not sys.stderr.isatty())
        acc = torch.zeros(self.net.num_tasks, device=self.device)
        n_acc, start, images = 0, time.perf_counter(), 0
        self.model.train()
        with open(run.metrics, "a") as log, contextlib.closing(writer):
            while self.step < cfg.steps:
                acc += self.train_step()
                n_acc += 1
                self.step += 1
                images += cfg.batch_size
                bar.update(1)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    rec = self.evaluate_and_select(acc / n_acc, time.perf_counter() - start, images)
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    self.log_tensorboard(writer, rec)
                    bar.set_postfix(val_err=f"{rec['mean_val_error']:.4f}",
                                    train=f"{float(acc.mean() / n_acc):.4f}")
                    acc.zero_()
                    n_acc = 0
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        save_checkpoint(run.checkpoint, self.state())
        bar.close()
        return self.finish(time.perf_counter() - start)

    def evaluate_and_select(self, train_loss: Tensor, elapsed: float, images: int) -> dict[str, Any]:
        cl = self.cfg.channels_last
        val_loss, val_error = evaluate_celeba(self.net, self.loaders["val"], self.device,
                                              self.cfg.precision, cl)
        rec = validation_record(self.step, elapsed, train_loss, (val_loss, val_error), self.net)
        score = rec["mean_val_loss"] if self.cfg.select == "val_loss" else rec["mean_val_error"]
        if score < self.best["score"]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
            self.best = {"score": score, "step": self.step, "state": state}
        return {**rec, "train_images_per_s": images / max(elapsed, 1e-9)}

    def log_tensorboard(self, writer: Any, rec: dict[str, Any]) -> None:
        step = rec["step"]
        writer.add_scalar("val/mean_error", rec["mean_val_error"], step)
        writer.add_scalar("val/mean_loss", rec["mean_val_loss"], step)
        writer.add_scalar("train/mean_loss", sum(rec["train_loss"]) / len(rec["train_loss"]), step)
        for t, name in enumerate(self.names):
            writer.add_scalar(f"val_error/{name}", rec["val_error"][t], step)

    def finish(self, elapsed: float) -> dict[str, Any]:
        """Score the best-on-validation weights on test (and val); write best.pt and result.json."""
        final = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.net.load_state_dict(self.best["state"])
        p, cl = self.cfg.precision, self.cfg.channels_last
        test_loss, test_error = evaluate_celeba(self.net, self.loaders["test"], self.device, p, cl)
        val_loss, val_error = evaluate_celeba(self.net, self.loaders["val"], self.device, p, cl)
        save_checkpoint(self.run_dir.best, self.best["state"])
        self.net.load_state_dict(final)
        test_acc = [1.0 - e for e in test_error]
        result = {
            **run_result(
                "celeba", self.cfg.ordering, self.cfg.seed, self.names, self.best["step"], self.step,
                (test_loss, test_error), (val_loss, val_error), elapsed,
            ),
            "test_accuracy": test_acc,
            "mean_test_accuracy": sum(test_acc) / len(test_acc),
            "eval_images": {s: len(self.loaders[s].dataset) for s in ("val", "test")},  # type: ignore[arg-type]
        }
        write_json(self.run_dir.result, result)
        return result


def build_celeba_net(cfg: Config, load_weights: bool = True) -> MultiTaskNet:
    """:func:`celeba_net` of ``cfg`` (``load_weights=False``: skip the ImageNet weights, e.g. when
    a checkpoint will overwrite them)."""
    return celeba_net(
        cfg.ordering,
        cfg.width,
        cfg.num_layers,
        cfg.backbone_weights if load_weights else None,
        num_tasks=cfg.tasks or len(CELEBA_ATTRIBUTES),
        depth=cfg.depth,
        dropout=cfg.dropout,
        seed=cfg.seed,
        init=cfg.init,  # type: ignore[arg-type]
        temperature=cfg.temperature,
        soft_norm=cfg.soft_norm,
        small_backbone=cfg.small_backbone,
        pretrained_download=cfg.pretrained_download and load_weights,
    )


def train_celeba(
    cfg: Config, out: str | Path, resume: bool = False, quiet: bool = False, clean: bool = False
) -> dict[str, Any]:
    """Train one CelebA run of ``cfg`` into ``out`` (Sec. 4.4); returns the result (also in
    ``out/result.json``). ``resume=True`` continues from ``out/checkpoint.pt``."""
    distributed.require_device(cfg.device)
    if distributed.env_world_size() > 1:
        raise ValueError("celeba trains in one process; torchrun with several processes is not supported "
                         "yet: run `softorder train celeba ...` without torchrun")
    weights = Path(cfg.backbone_weights).expanduser() if cfg.backbone_weights else None
    if weights is not None and not resume and not weights.is_file():  # fail before loading any data
        raise FileNotFoundError(f"backbone weights file {weights} does not exist; {WEIGHTS_HELP}")
    out = Path(out)
    RunDir(out).check_writable() if resume else RunDir(out).start_fresh(clean)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net = build_celeba_net(cfg, load_weights=not resume)
    trainer = CelebATrainer(cfg, net, out, quiet=quiet)
    if resume:
        trainer.resume()
    return trainer.run()
