"""What the layers above use: a benchmark's config, data, net, one run and stacked trials."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from softorder.benchmarks.base import get
from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.train import config_files, trials
from softorder.train.config import Config
from softorder.train.run import train_run


def check(cfg: Config) -> Config:
    """``cfg`` if its benchmark is known and can run it (task count, ...), else a one-line error."""
    get(cfg.benchmark).check(cfg)
    return cfg


def benchmark_config(
    benchmark: str,
    quick: bool = False,
    overrides: Sequence[str] | dict[str, Any] = (),
    path: str | Path | None = None,
    orderings: Sequence[str] | None = None,
) -> tuple[Config, dict[str, dict[str, Any]]]:
    """The shipped (or given) YAML of a benchmark with ``quick`` and the command line applied,
    and its per-ordering settings (:func:`softorder.train.config_files.read_benchmark_config`),
    checked for the ``orderings`` that will run (default: the config's own)."""
    return config_files.read_benchmark_config(path or get(benchmark).config_path, quick, overrides,
                                              orderings, check)


def load_config(path: str | Path, overrides: Sequence[str] = (), saved: bool = False) -> Config:
    """A YAML config (``saved``: a run folder's ``config.yaml``) with ``key=value`` overrides, checked."""
    return check(config_files.load_config(path, overrides, saved))


def load_tasks(cfg: Config) -> list[TaskData]:
    return get(cfg.benchmark).load_tasks(cfg)


def build_net(cfg: Config, tasks: Sequence[TaskData]) -> MultiTaskNet:
    return get(cfg.benchmark).build_net(cfg, tasks)


def train(
    cfg: Config,
    out: str | Path,
    tasks: Sequence[TaskData] | None = None,
    net: MultiTaskNet | None = None,
    resume: bool = False,
    quiet: bool = False,
    clean: bool = False,
) -> dict[str, Any]:
    """Train one run of ``cfg`` into ``out`` (its tasks loaded and its net built from the seed
    unless given); returns the result (also in ``out/result.json``). ``resume`` continues from
    ``out/checkpoint.pt``; ``clean`` empties a folder the caller owns instead of refusing it.
    See :func:`softorder.train.run.train_run`."""
    bench = get(cfg.benchmark)
    bench.check_run(cfg, resume)
    return train_run(cfg, out, lambda resuming: bench.setup(cfg, tasks, net, resuming), resume, quiet, clean)


def train_trials(
    cfgs: Sequence[Config],
    outs: Sequence[str | Path],
    task_sets: Sequence[Sequence[TaskData]] | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Train the trials ``cfgs`` (configs that differ only in ``seed``) as one vectorised model
    (``softorder.train.trials``); returns each trial's result (also in ``out/result.json``)."""
    trials.check_stackable(cfgs)
    bench = get(cfgs[0].benchmark)
    if not bench.in_memory:
        raise ValueError(f"{bench.name} streams its data from disk: its trials run one by one")
    check(cfgs[0])
    if cfgs[0].run.threads:
        torch.set_num_threads(cfgs[0].run.threads)
    if task_sets is None:
        task_sets = []
        for c in cfgs:
            torch.manual_seed(c.seed)
            task_sets.append(bench.load_tasks(c))
    return trials.train_trials(cfgs, outs, task_sets, bench.build_net, quiet=quiet)
