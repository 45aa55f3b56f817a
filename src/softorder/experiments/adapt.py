"""``softorder adapt``: reuse the layers a finished run learned as building blocks for new tasks.

The paper's conclusion (Meyerson & Miikkulainen, 2018, Sec. 6) proposes the learned shared layers
as a library of building blocks that new tasks can assemble. This module tests that: the core bank
``core.bank.*`` of a finished run (``RUN_DIR/best.pt``) is copied into a net built for *new* tasks
with the run's own architecture (width / channels / layers), and is frozen. Three modes:

=========  =====================================================================================
mode       what is trained on the new tasks
=========  =====================================================================================
soft       frozen bank, soft ordering: new scalings S (zero init, Eq. 7), encoders and decoders
parallel   frozen bank applied in parallel order (Eq. 2): encoders and decoders only
scratch    each new task alone from scratch: its own copy of the core (ordering ``single``)
=========  =====================================================================================

Learned dense encoders are per task, so they are trained for the new tasks in every mode; the
Omniglot encoder (channel padding) has no parameters. All new tasks are adapted jointly, as one
multitask net, with the trainer of the paper's runs (Sec. 4). New tasks come from the benchmark
(:meth:`softorder.benchmarks.Benchmark.new_tasks`); the command line is ``adapt_cli.py``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from softorder import benchmarks
from softorder.atomic import write_json
from softorder.data.tasks import TaskData
from softorder.nn.network import MultiTaskNet
from softorder.nn.orderings import LEARNED
from softorder.train.config import Config
from softorder.train.rundir import RunDir

#: How new tasks use a run's frozen layers: they learn their own S (soft), gates (gated) or routes
#: (routed) over them, take them in parallel order, or train their own network (scratch).
MODES = ("soft", "parallel", "scratch", "gated", "routed")
#: What ``softorder adapt`` runs unless told (``--modes``): the three of Sec. 6.
DEFAULT_MODES = ("soft", "parallel", "scratch")
BANK_PREFIX = "core.bank."


def load_source(run_dir: str | Path) -> tuple[Config, dict[str, torch.Tensor]]:
    """The run's config and its trained core bank weights (``core.bank.*`` of ``best.pt``,
    prefix stripped)."""
    run_dir = Path(run_dir)
    cfg_path, best = RunDir(run_dir).config, RunDir(run_dir).best
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{cfg_path} does not exist: RUN_DIR must be a run written by `softorder train`"
        )
    if not best.is_file():
        raise FileNotFoundError(
            f"{best} does not exist: the run in {run_dir} has not finished (its best weights are "
            f"written at the end); finish it with `softorder train --resume {run_dir}`"
        )
    cfg = benchmarks.load_config(cfg_path, saved=True)
    try:
        state = torch.load(best, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a torch file
        raise ValueError(f"{best} is unreadable ({type(e).__name__}); train the source run again") from None
    if not isinstance(state, dict):
        raise ValueError(f"{best} holds a {type(state).__name__}, not a softorder network state")
    bank = {k[len(BANK_PREFIX):]: v for k, v in state.items() if k.startswith(BANK_PREFIX)}
    if not bank:
        raise ValueError(f"{best} holds no {BANK_PREFIX}* weights: it is not a softorder network state")
    return cfg, bank


def subsample_shots(task: TaskData, shots: int | None, seed: int = 0) -> TaskData:
    """Keep ``shots`` training rows per class (all of a class's rows when it has fewer; ``None``
    keeps everything). Validation and test splits are unchanged. Seeded: the same rows each call."""
    if shots is None:
        return task
    if shots < 1:
        raise ValueError(f"shots must be at least 1 (or 'all'), got {shots}")
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(task.num_classes):
        rows = torch.nonzero(task.y_train == c).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=gen)[:shots]])
    idx = torch.cat(keep).sort().values
    return dataclasses.replace(task, x_train=task.x_train[idx], y_train=task.y_train[idx])


def adapt_config(source: Config, mode: str, num_tasks: int, overrides: dict[str, Any]) -> Config:
    """The config of an adaptation in ``mode`` of a run of ``source`` to ``num_tasks`` new tasks."""
    if mode not in MODES:
        raise ValueError(f"unknown adapt mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode != "scratch" and source.model.ordering == "single":
        raise ValueError(
            "the source run uses ordering 'single' (no shared layers): adapt a run with a shared "
            "core (soft, parallel or permuted), or use mode 'scratch' only"
        )
    fixed = sorted(set(overrides) & {"ordering", "tasks", "depth"})
    if fixed:
        raise ValueError(f"--set {', '.join(fixed)}: the mode and --new-tasks decide it; leave it out")
    changes: dict[str, Any] = {"tasks": num_tasks}
    if mode in LEARNED:  # the new tasks learn how to use the frozen layers (their S, gates, routes)
        changes["ordering"] = mode
    elif mode == "parallel":
        changes.update(ordering="parallel", depth=None)
    else:  # no sharing between the new tasks: each one trains its own network from scratch
        changes.update(ordering="single", depth=None)
    return source.replace(**{**changes, **overrides})


def _freeze_bank(net: MultiTaskNet, bank: dict[str, torch.Tensor], run_dir: Path) -> None:
    try:
        net.core.bank.load_state_dict(bank, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"the core bank of {run_dir / 'best.pt'} does not fit the adapted net ({e}); do not "
            "override width, channels, num_layers or padding of the source run"
        ) from e
    net.core.bank.requires_grad_(False)


def adapt(
    run_dir: str | Path,
    tasks: Sequence[TaskData],
    cfg_overrides: dict[str, Any] | None = None,
    mode: str = "soft",
    out: str | Path | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Adapt the layers learned in ``run_dir`` to the new ``tasks`` in ``mode`` (Sec. 6).

    ``cfg_overrides`` change the run's config for the adaptation (steps, lr, device, ...). The
    adapted run is written to ``out`` (default ``RUN_DIR/adapt/<mode>``). Returns the run result
    (``mean_test_error`` etc.) with ``mode``, ``source`` and the trainable / frozen parameter counts.
    """
    run_dir = Path(run_dir)
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no new tasks to adapt to: give at least one TaskData")
    source, bank = load_source(run_dir)
    cfg = adapt_config(source, mode, len(tasks), dict(cfg_overrides or {}))
    out = Path(out) if out is not None else run_dir / "adapt" / mode
    RunDir(out).start_fresh()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.seed)
    net = benchmarks.build_net(cfg, tasks)
    if mode != "scratch":
        _freeze_bank(net, bank, run_dir)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    result = benchmarks.train(cfg, out, tasks=tasks, net=net, quiet=quiet)
    return {
        **result,
        "mode": mode,
        "source": str(run_dir),
        "out": str(out),
        "trainable_parameters": trainable,
        "frozen_parameters": frozen,
    }


def run_modes(
    run_dir: str | Path,
    tasks: Sequence[TaskData],
    modes: Sequence[str],
    out: str | Path,
    cfg_overrides: dict[str, Any] | None = None,
    quiet: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`adapt` in each mode into ``out/<mode>``; writes and returns ``out/adapt_results.json``."""
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown adapt mode {m!r}; choose from {', '.join(MODES)}")
    out = Path(out)
    results = [adapt(run_dir, tasks, cfg_overrides, m, out / m, quiet) for m in modes]
    summary = {
        "source": str(run_dir),
        "source_sha256": (extra or {}).get("source_sha256") or source_fingerprint(run_dir),
        "tasks": [t.name for t in tasks],
        "train_rows": [int(t.x_train.shape[0]) for t in tasks],
        **(extra or {}),
        "results": [
            {k: r[k] for k in ("mode", "mean_test_error", "test_error", "best_step", "trainable_parameters",
                               "frozen_parameters", "out") if k in r}
            for r in results
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "adapt_results.json", summary)
    return summary


def new_tasks_for(
    source: Config,
    benchmark: str,
    num_new: int,
    skip: int = 0,
    data_dir: str | None = None,
    seed: int | None = None,
) -> list[TaskData]:
    """Tasks the source run did not train on, from ``benchmark``
    (:meth:`softorder.benchmarks.Benchmark.new_tasks`). ``seed`` (default: the run's) draws the
    new tasks' splits, so adaptations of different source runs with the same ``seed`` are scored
    on the same test drawings."""
    if num_new < 1:
        raise ValueError(f"--new-tasks must be at least 1, got {num_new}")
    return benchmarks.get(benchmark).new_tasks(source, num_new, skip, data_dir,
                                                source.seed if seed is None else seed)


def source_fingerprint(run_dir: str | Path) -> str:
    """SHA-256 of the run's ``best.pt``: which trained layers an adaptation used (a source run
    trained again, e.g. on another machine, has other weights and so another fingerprint)."""
    return hashlib.sha256(RunDir(Path(run_dir)).best.read_bytes()).hexdigest()


def adapt_shots(
    run_dir: str | Path,
    modes: Sequence[str],
    out: str | Path,
    shots: Sequence[int | None] = (None,),
    new_tasks: int = 5,
    skip: int = 0,
    benchmark: str | None = None,
    cfg_overrides: dict[str, Any] | None = None,
    data_dir: str | None = None,
    quiet: bool = True,
    on_shots: Callable[[str, Path, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """:func:`run_modes` once per entry of ``shots`` (training drawings kept per class; ``None``:
    all) on ``new_tasks`` tasks the run did not train on, each into ``out/shots-K`` (into ``out``
    itself for a single entry). The new tasks' splits, kept drawings and initialisation come from
    the ``seed`` of ``cfg_overrides`` (default: the run's), the same for every mode: paired.
    Writes and returns ``out/adapt_summary.json``: mean test error by shots and mode, with the
    source's :func:`source_fingerprint`. ``on_shots(label, folder, run_modes summary)`` is called
    after each entry."""
    source, _ = load_source(run_dir)  # first: its errors name a missing or unreadable best.pt
    fingerprint = source_fingerprint(run_dir)  # of the weights this call starts from
    benchmark = benchmark or source.benchmark
    overrides = dict(cfg_overrides or {})
    if data_dir:
        overrides["data_dir"] = data_dir
    seed = source.replace(seed=overrides.get("seed", source.seed)).seed
    all_tasks = new_tasks_for(source, benchmark, new_tasks, skip, data_dir, seed)
    for k, v in benchmarks.get(benchmark).adapt_overrides(source).items():  # e.g. the new tasks' set
        overrides.setdefault(k, v)
    out = Path(out)
    table: dict[str, dict[str, float]] = {}
    for kept in shots:
        label = str(kept or "all")
        tasks = [subsample_shots(t, kept, seed * 1000 + i) for i, t in enumerate(all_tasks)]
        where = out / f"shots-{label}" if len(shots) > 1 else out
        extra = {"benchmark": benchmark, "shots": kept, "seed": seed, "source_sha256": fingerprint}
        s = run_modes(run_dir, tasks, modes, where, overrides, quiet=quiet, extra=extra)
        table[label] = {r["mode"]: r["mean_test_error"] for r in s["results"]}
        if on_shots:
            on_shots(label, where, s)
    summary = {"source": str(run_dir), "source_sha256": fingerprint, "benchmark": benchmark, "seed": seed,
               "tasks": [t.name for t in all_tasks], "mean_test_error": table}
    write_json(out / "adapt_summary.json", summary)
    return summary
