"""``softorder compare``: every method × trial of a benchmark, with CIs and paired p-values.

Trial k of every method uses seed ``seed + k``: the same data split and task draw, a different
initialisation per trial, and (for ``permuted``) a fresh random order per trial, as in the paper.
Runs go to ``OUT/runs/<method>/trial<k>/``; a finished run (``result.json``) is not redone.

Runs go to a process pool over the CPU cores. On the small dense benchmarks (``vectorise`` in
their plugin) the fresh trials of a method train together as one vectorised model
(``train/trials.py``), which is several times faster than one run after another;
``vectorise=False`` turns that off.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from softorder import benchmarks
from softorder.atomic import atomic_write_bytes, read_json_object, write_json
from softorder.data.tasks import TaskData
from softorder.experiments.pool import completed, worker_pool
from softorder.experiments.pool import die_with_parent as die_with_parent  # its old home: scripts import it
from softorder.experiments.summary import results_markdown, summarise
from softorder.nn.orderings import ORDERINGS, PAPER_ORDERINGS
from softorder.train import distributed
from softorder.train.config import LOCATIONS, Config
from softorder.train.rundir import RESULTS_JSON, RESULTS_MD, RunDir
from softorder.train.yaml12 import read_mapping

EXTRA_KEYS = ("quick", "orderings")
# Longest first in the pool: soft runs every layer at every depth.
_COST = {"soft": 0, "single": 1, "parallel": 2, "permuted": 3}


@functools.lru_cache(maxsize=4)
def _cached_tasks(cfg_items: tuple[tuple[str, Any], ...]) -> list[TaskData]:
    return benchmarks.load_tasks(Config.from_dict({k: list(v) if isinstance(v, tuple) else v
                                                   for k, v in cfg_items}))


def _tasks(cfg: Config) -> list[TaskData]:
    """The tasks of ``cfg``, loaded once per process for all methods that share its data (its
    benchmark, seed and data section)."""
    d = {"benchmark": cfg.benchmark, "seed": cfg.seed, **dataclasses.asdict(cfg.data)}
    return _cached_tasks(tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def _check_config(cfg: Config, out: Path) -> None:
    """A trial folder that holds a run (to reuse or resume) must hold a run of ``cfg``."""
    run = RunDir(out)
    if run.started() and run.config.exists():
        theirs = Config.from_dict(read_mapping(run.config), source=str(run.config), saved=True)
        different = [k for k in theirs.differences(cfg) if k not in LOCATIONS]
        if different:
            raise FileExistsError(
                f"{out} holds a run with a different config ({', '.join(different)}); "
                "use another --out or delete that folder"
            )


def run_trial(cfg_dict: dict[str, Any], out: str, threads: int | None) -> dict[str, Any]:
    """Train the run of ``cfg_dict`` in ``out`` and return its ``result.json``: read back when it
    finished, resumed from its checkpoint when it started (a pool worker's unit of work)."""
    if threads:
        torch.set_num_threads(threads)
    cfg, run = Config.from_dict(cfg_dict), RunDir(out)
    _check_config(cfg, run.path)
    if run.finished():
        return json.loads(run.result.read_text())
    resume = run.checkpoint.exists()
    tasks = _tasks(cfg) if benchmarks.get(cfg.benchmark).in_memory else None  # else it streams its data
    return benchmarks.train(cfg, out, tasks=tasks, resume=resume, quiet=True, clean=True)


def _run_group(cfg_dicts: list[dict[str, Any]], outs: list[str], threads: int | None) -> list[dict[str, Any]]:
    """Fresh trials of one method as one vectorised model (``train/trials.py``)."""
    if threads:
        torch.set_num_threads(threads)
    cfgs = [Config.from_dict(d) for d in cfg_dicts]
    for c, o in zip(cfgs, outs):
        _check_config(c, Path(o))
    return benchmarks.train_trials(cfgs, outs, [_tasks(c) for c in cfgs])


def _units(
    jobs: list[tuple[str, int, Config, Path]], vectorise: bool
) -> list[tuple[str, list[tuple[str, int, Config, Path]]]]:
    """Work for the pool: ``("one", [job])`` or ``("group", jobs)`` (a method's fresh trials)."""
    units: list[tuple[str, list[tuple[str, int, Config, Path]]]] = []
    fresh: dict[str, list[tuple[str, int, Config, Path]]] = {}
    for job in jobs:
        o, _, _, d = job
        if vectorise and not RunDir(d).started():
            fresh.setdefault(o, []).append(job)
        else:
            units.append(("one", [job]))
    for group in fresh.values():
        units.append(("group", group) if len(group) > 1 else ("one", group))
    return sorted(units, key=lambda u: (u[0] != "group", _COST.get(u[1][0][0], 9)))


def check_orderings(orderings: Sequence[str]) -> None:
    """Refuse an empty list or an unknown name in ``--orderings``."""
    bad = [o for o in orderings if o not in ORDERINGS]
    if bad:
        raise ValueError(f"unknown ordering(s) {bad}; choose from {', '.join(ORDERINGS)}")
    if not orderings:
        raise ValueError(f"no orderings to compare; name some of {', '.join(ORDERINGS)}")


def check_request(
    cfg: Config, orderings: Sequence[str], trials: int, workers: int | None, vectorise: bool | None
) -> bool:
    """Refuse a comparison that cannot run (before anything is printed, trained or written);
    returns ``vectorise`` resolved (default: the benchmark's)."""
    bench = benchmarks.get(cfg.benchmark)
    benchmarks.check(cfg)
    check_orderings(orderings)
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    distributed.require_device(cfg.run.device)  # before any worker starts
    if vectorise is None:
        vectorise = bench.vectorise
    if vectorise and not bench.in_memory:
        raise ValueError(
            f"{bench.name} streams its data from disk: its trials run one by one (drop --vectorise)"
        )
    return vectorise


def compare(
    cfg: Config,
    out: str | Path,
    orderings: Sequence[str] = PAPER_ORDERINGS,
    trials: int = 5,
    per_ordering: dict[str, dict[str, Any]] | None = None,
    workers: int | None = None,
    progress: bool = True,
    vectorise: bool | None = None,
) -> dict[str, Any]:
    """Run ``orderings`` × ``trials`` and write ``results.json`` and ``results.md`` into ``out``.

    ``vectorise`` (default: the benchmark's ``vectorise``) trains each method's fresh
    trials as one vectorised model; ``workers`` processes (default: CPU cores) share the work."""
    vectorise = check_request(cfg, orderings, trials, workers, vectorise)
    out = Path(out)
    per_ordering = per_ordering or {}
    jobs = []
    for k in range(trials):
        for o in orderings:
            c = cfg.replace(ordering=o, seed=cfg.seed + k, **per_ordering.get(o, {}))
            jobs.append((o, k, c, out / "runs" / o / f"trial{k}"))
    units = _units(jobs, vectorise and trials > 1)
    workers = workers or min(len(units), os.cpu_count() or 1)
    reused = sum(RunDir(d).finished() for *_, d in jobs)
    start = time.perf_counter()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    threads = 1 if workers > 1 else None

    def submit(call: Any, kind: str, group: list[tuple[str, int, Config, Path]]) -> Any:
        if kind == "group":
            cfgs, outs = [c.to_dict() for _, _, c, _ in group], [str(d) for *_, d in group]
            return call(_run_group, cfgs, outs, threads)
        _, _, c, d = group[0]
        return call(run_trial, c.to_dict(), str(d), threads)

    def done(group: list[tuple[str, int, Config, Path]], got: Any) -> None:
        for (o, k, _, _), r in zip(group, got if isinstance(got, list) else [got], strict=True):
            results[(o, k)] = r
            _progress(progress, len(results), len(jobs), o, k, r)

    if workers == 1:
        for kind, group in units:
            done(group, submit(lambda fn, *a: fn(*a), kind, group))
    else:
        with worker_pool(workers) as pool:  # Ctrl-C or a failed run ends every worker at once
            futures = {submit(pool.submit, kind, group): group for kind, group in units}
            for fut in completed(futures):
                done(futures[fut], fut.result())
    summary = summarise(cfg, orderings, trials, results, per_ordering)
    summary.update(_timing(out, time.perf_counter() - start, reused, len(jobs)))
    write_json(out / RESULTS_JSON, summary)
    atomic_write_bytes(out / RESULTS_MD, results_markdown(summary).encode())
    return summary


def _timing(out: Path, elapsed: float, reused: int, total: int) -> dict[str, Any]:
    """``wall_time_s`` of this invocation and the ``trials_reused`` it read back finished. An
    invocation that trained nothing keeps the timing of the run that wrote ``out/results.json``, so
    re-reading finished trials rewrites the same file; a resumed comparison's time covers only its
    own invocation."""
    if reused == total and (old := read_json_object(out / RESULTS_JSON)):
        kept: dict[str, Any] = {k: old[k] for k in ("trials_reused", "wall_time_s") if k in old}
        if kept:
            return kept
    return {"trials_reused": reused, "wall_time_s": elapsed}


def _progress(on: bool, done: int, total: int, o: str, k: int, r: dict[str, Any]) -> None:
    if on:
        print(
            f"  [{done}/{total}] {o:<9} trial {k}: test error {100 * r['mean_test_error']:.2f}%", flush=True
        )
