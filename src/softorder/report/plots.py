"""Plots of runs, comparisons and sweeps (the paper's Fig. 4 and 6), written as PNG files.

==========================  ===================================================  ==============
function                    what it draws                                        paper
==========================  ===================================================  ==============
``plot_s_heatmaps``         per task, the depth × layer grid of softmax(S) and   Fig. 4d
                            its strongest path (argmax layer per depth)
``plot_s_trajectories``     per chosen task and depth, each layer's weight       Fig. 4b–c
                            over training steps
``plot_run_curves``         one run's validation error per task over steps       —
``plot_learning_curves``    mean validation error per method over steps, with    Fig. 4a
                            a min..max or ±CI95 band over trials
``plot_per_task``           grouped bars of test error per task and method       Fig. 6
``plot_sweep``              mean test error vs number of tasks T per method      Fig. 6a
==========================  ===================================================  ==============

Inputs are the directories the training runner writes: a *run* dir (``config.yaml``,
``metrics.jsonl``, ``result.json``), a *compare* dir (``results.json`` and ``runs/<method>/trial<k>/``)
and a *sweep* dir (compare dirs named ``T<k>/``).

(Over 300 lines: one function per figure, each reading the run files it needs; they share the
readers and styling at the top.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from softorder.nn.make import ordering_class
from softorder.nn.orderings import SoftOrdering
from softorder.stats import error_bars, mean_ci95
from softorder.train.rundir import RESULTS_JSON, RunDir
from softorder.train.yaml12 import read_mapping

PathLike = str | Path


# -- loading ------------------------------------------------------------------------------------
def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rerun to rewrite it") from err


def load_metrics(run_dir: PathLike) -> list[dict[str, Any]]:
    """The evaluations of a run, one dict per line of ``metrics.jsonl``, in file order."""
    run = RunDir(run_dir)
    if not run.metrics.is_file():
        raise FileNotFoundError(f"{run.metrics} not found: {run_dir} is not a run directory of training")
    rows = run.read_metrics()  # a last line cut by a kill is skipped
    if not rows:
        raise ValueError(f"{run.metrics} has no evaluations; train for at least eval_every steps")
    return rows


def load_result(run_dir: PathLike) -> dict[str, Any]:
    """A run's ``result.json``."""
    return read_json(RunDir(run_dir).result, f"{run_dir} is not a finished run directory")


def load_compare(compare_dir: PathLike) -> dict[str, Any]:
    """A compare dir's ``results.json``."""
    return read_json(Path(compare_dir) / RESULTS_JSON, f"{compare_dir} is not a compare directory")


def sweep_points(sweep_dir: PathLike) -> list[tuple[int, Path]]:
    """``(T, compare_dir)`` for every ``T<k>/results.json`` under a sweep dir, sorted by T."""
    found = []
    for child in Path(sweep_dir).iterdir() if Path(sweep_dir).is_dir() else []:
        m = re.fullmatch(r"T(\d+)", child.name)
        if m and (child / RESULTS_JSON).is_file():
            found.append((int(m.group(1)), child))
    if not found:
        raise FileNotFoundError(
            f"{sweep_dir} holds no T<k>/results.json: not a sweep directory (run a sweep over the "
            "number of tasks first)"
        )
    return sorted(found)


def run_dirs(compare_dir: PathLike, method: str, results: dict[str, Any] | None = None) -> list[Path]:
    """The existing run dirs of one method of a compare dir."""
    results = results if results is not None else load_compare(compare_dir)
    runs = results["methods"][method].get("runs", [])
    return [Path(compare_dir) / r for r in runs if (Path(compare_dir) / r).is_dir()]


def s_at(run_dir: PathLike, which: str = "best") -> tuple[np.ndarray, int]:
    """The mixing weights (the ``S`` key: :func:`mixing_label`) as ``[T, K, L]`` and its step: at
    the run's best step (``which='best'``, falling back to the last evaluation with S) or at the
    last evaluation with S (``which='last'``)."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    rows = [r for r in load_metrics(run_dir) if r.get("S") is not None]
    if not rows:
        raise ValueError(
            f"{run_dir} has no soft-ordering weights S in metrics.jsonl (a hard ordering?); S plots "
            "need a run with ordering=soft"
        )
    chosen = rows[-1]
    if which == "best" and (RunDir(run_dir).result).is_file():
        best = load_result(run_dir).get("best_step")
        chosen = next((r for r in rows if r["step"] == best), chosen)
    return np.asarray(chosen["S"], dtype=float), int(chosen["step"])


def mixing_label(run_dir: PathLike) -> str:
    """What a run's ``S`` key holds (``MultiTaskNet.mixing_weights()``), as its config made it: the
    ordering's own words (:meth:`~softorder.nn.SoftOrdering.weights_label`), e.g. ``softmax(S)``,
    ``softmax(S/τ)`` over a temperature, divided by its L2 norm with ``soft_norm: l2``."""
    cfg = RunDir(run_dir).config
    data = read_mapping(cfg) if cfg.is_file() else {}
    cls = ordering_class(data.get("ordering") or "soft")
    if not issubclass(cls, SoftOrdering):
        raise ValueError(f"{run_dir}: a {cls.name} ordering logs no mixing weights S")
    return cls.weights_label(float(data.get("temperature") or 1.0), data.get("soft_norm") or "none")


def has_s(run_dir: PathLike) -> bool:
    """True when the run logged soft-ordering weights."""
    try:
        return any(r.get("S") is not None for r in load_metrics(run_dir))
    except (FileNotFoundError, ValueError):
        return False


def task_names(run_dir: PathLike, num_tasks: int) -> list[str]:
    """The run's task names from ``result.json``, else ``task0..``."""
    try:
        names = list(load_result(run_dir).get("task_names") or [])
    except (FileNotFoundError, ValueError):
        names = []
    return names if len(names) == num_tasks else [f"task{t}" for t in range(num_tasks)]


def strongest_path(weights: Any) -> list[int]:
    """The strongest path through one task's mixing weights ``[K, L]``: the layer with the largest
    weight at each depth (the path drawn in the paper's Fig. 4d)."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"strongest_path expects one task's weights of shape [depth, layer], got {w.shape}")
    return [int(j) for j in w.argmax(axis=1)]


# -- drawing helpers ----------------------------------------------------------------------------
def save_figure(fig: Any, out: PathLike) -> Path:
    """Write ``fig`` as a PNG at ``out`` (creating its folder) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


def _grid(n: int, max_cols: int = 5) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean (``softorder.stats``; 0 for one value)."""
    return mean_ci95(values)[1] or 0.0


def _bounds(key: str) -> tuple[float, float]:
    """Where a metric lives: an error rate in [0, 1], a loss in [0, inf)."""
    return (0.0, 1.0) if "error" in key else (0.0, math.inf)


def _scale(key: str) -> float:
    """Error rates are shown in % (as every table of the reports shows them), losses as they are."""
    return 100.0 if "error" in key else 1.0


def _error_axis(ax: Any, label: str) -> None:
    """A y axis of error rates in %: from 0, never below it (also when every error is 0)."""
    ax.set_ylabel(f"{label} %")
    ax.set_ylim(0.0, min(100.0, max(ax.get_ylim()[1], 1.0)))


# -- S plots (Sec. 5, Fig. 4) -------------------------------------------------------------------
def plot_s_heatmaps(run_dir: PathLike, out: PathLike, which: str = "best") -> Path:
    """One depth × layer heatmap of the mixing weights per task (softmax(S), or what the run's
    ``soft_norm`` made of it: :func:`mixing_label`), the strongest path marked (Fig. 4d)."""
    s, step = s_at(run_dir, which)
    T, K, L = s.shape
    names = task_names(run_dir, T)
    rows, cols = _grid(T)
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 + 0.55 * L * cols, 0.6 + 0.55 * K * rows),
                             squeeze=False)
    for t in range(rows * cols):
        ax = axes[t // cols][t % cols]
        if t >= T:
            ax.axis("off")
            continue
        im = ax.imshow(s[t], vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
        path = strongest_path(s[t])
        ax.plot(path, range(K), color="red", marker="o", markersize=4, linewidth=1.5)
        if K <= 6 and L <= 6:  # small grids: print the weights too
            for k in range(K):
                for j in range(L):
                    ax.text(j, k, f"{s[t, k, j]:.2f}", ha="center", va="bottom", fontsize=5,
                            color="white" if s[t, k, j] < 0.6 else "black")
        ax.set_title(names[t], fontsize=8)
        ax.set_xticks(range(L), [str(j + 1) for j in range(L)])  # F_1..F_L at depths 1..K, as in
        ax.set_yticks(range(K), [str(k + 1) for k in range(K)])  # the paper and the health plots
        ax.tick_params(labelsize=7)
        if t % cols == 0:
            ax.set_ylabel("depth", fontsize=8)
        if t // cols == rows - 1 or t + cols >= T:
            ax.set_xlabel("layer", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=mixing_label(run_dir))
    fig.suptitle(f"soft ordering at step {step}: strongest path in red", fontsize=9)
    return save_figure(fig, out)


def plot_s_trajectories(run_dir: PathLike, out: PathLike, tasks: Sequence[int] = (0, 1)) -> Path:
    """For each chosen task, one panel per depth with each layer's weight over steps (Fig. 4b–c)."""
    rows = [r for r in load_metrics(run_dir) if r.get("S") is not None]
    if not rows:
        raise ValueError(f"{run_dir} has no soft-ordering weights S; trajectories need ordering=soft")
    steps = np.array([r["step"] for r in rows])
    s = np.asarray([r["S"] for r in rows], dtype=float)  # [steps, T, K, L]
    _, T, K, L = s.shape
    tasks = [t for t in tasks if 0 <= t < T] or [0]
    names = task_names(run_dir, T)
    fig, axes = plt.subplots(len(tasks), K, figsize=(2.4 * K + 0.8, 2.0 * len(tasks) + 0.4),
                             squeeze=False, sharex=True, sharey=True)
    for i, t in enumerate(tasks):
        for k in range(K):
            ax = axes[i][k]
            for j in range(L):
                ax.plot(steps, s[:, t, k, j], label=f"layer {j + 1}", linewidth=1.2)
            ax.set_ylim(0.0, 1.0)
            ax.set_title(f"{names[t]}, depth {k + 1}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(tasks) - 1:
                ax.set_xlabel("step", fontsize=8)
    fig.supylabel(mixing_label(run_dir), fontsize=8)  # once: a label per row would run into the next
    axes[0][K - 1].legend(fontsize=6, loc="upper right")
    return save_figure(fig, out)


# -- curves and bars ----------------------------------------------------------------------------
def plot_run_curves(run_dir: PathLike, out: PathLike) -> Path:
    """One run's validation error per task (thin) and the mean (thick) over steps."""
    rows = load_metrics(run_dir)
    steps = [r["step"] for r in rows]
    err = 100 * np.asarray([r["val_error"] for r in rows], dtype=float)
    names = task_names(run_dir, err.shape[1])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for t in range(err.shape[1]):
        ax.plot(steps, err[:, t], linewidth=0.8, alpha=0.6, label=names[t] if err.shape[1] <= 10 else None)
    ax.plot(steps, [100 * r["mean_val_error"] for r in rows], color="black", linewidth=2.0, label="mean")
    ax.set_xlabel("step")
    _error_axis(ax, "validation error")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)


def _method_curve(runs: Sequence[Path], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps evaluated by every trial and the trials' values there, ``([S], [trials, S])``."""
    series = []
    for run in runs:
        try:
            series.append({r["step"]: float(r[key]) for r in load_metrics(run)})
        except (FileNotFoundError, ValueError, KeyError):
            continue
    if not series:
        return None
    common = sorted(set.intersection(*(set(s) for s in series)))
    if not common:
        return None
    return np.array(common), np.array([[s[step] for step in common] for s in series])


def plot_learning_curves(
    compare_dir: PathLike, out: PathLike, band: str = "minmax", key: str = "mean_val_error"
) -> Path:
    """Mean over trials of ``key`` per method over steps, with a band over trials: ``'minmax'``
    (min..max) or ``'ci'`` (±95% CI of the mean)."""
    if band not in ("minmax", "ci"):
        raise ValueError(f"band must be 'minmax' or 'ci', got {band!r}")
    results = load_compare(compare_dir)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = 0
    for method in results["methods"]:
        curve = _method_curve(run_dirs(compare_dir, method, results), key)
        if curve is None:
            continue
        steps, vals = curve[0], curve[1] * _scale(key)
        mean = vals.mean(0)
        if band == "minmax":
            lo, hi = vals.min(0), vals.max(0)
        else:
            half = np.array([_ci95(vals[:, i].tolist()) for i in range(vals.shape[1])])
            low, high = (b * _scale(key) for b in _bounds(key))
            lo, hi = np.clip(mean - half, low, high), np.clip(mean + half, low, high)
        (line,) = ax.plot(steps, mean, label=f"{method} (n={len(vals)})")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        raise ValueError(
            f"{compare_dir}: no method has run dirs with metrics.jsonl; the learning curves need the "
            "runs/<method>/trial<k>/ folders written by `softorder compare`"
        )
    ax.set_xlabel("step")
    if "error" in key:
        _error_axis(ax, key.replace("_", " "))
    else:
        ax.set_ylabel(key.replace("_", " "))
    what = "min..max over trials" if band == "minmax" else "95% CI of the mean"
    ax.set_title(f"band: {what}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)


def per_task_trials(compare_dir: PathLike, method: str, results: dict[str, Any] | None = None) -> np.ndarray:
    """Test error per trial and task of one method, ``[trials, T]``, from its runs' result.json
    (empty ``[0, T]`` when none can be read)."""
    results = results if results is not None else load_compare(compare_dir)
    T = len(results.get("task_names") or results["methods"][method]["per_task_error_mean"])
    rows = []
    for run in run_dirs(compare_dir, method, results):
        try:
            err = load_result(run)["test_error"]
        except (FileNotFoundError, ValueError, KeyError):
            continue
        if len(err) == T:
            rows.append(err)
    return np.asarray(rows, dtype=float).reshape(-1, T)


def plot_per_task(compare_dir: PathLike, out: PathLike) -> Path:
    """Grouped bars: mean test error of each task for each method, with 95% CI bars over trials
    where the run dirs are there."""
    results = load_compare(compare_dir)
    methods = list(results["methods"])
    first = results["methods"][methods[0]]["per_task_error_mean"]
    names = list(results.get("task_names") or [f"task{t}" for t in range(len(first))])
    T, M = len(names), len(methods)
    width = 0.8 / M
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * T * max(M, 2) * 0.6 + 2), 3.8))
    x = np.arange(T)
    for i, method in enumerate(methods):
        mean = 100 * np.asarray(results["methods"][method]["per_task_error_mean"], dtype=float)
        if len(mean) != T:
            raise ValueError(
                f"{compare_dir}/results.json: method {method!r} has {len(mean)} per-task errors for "
                f"{T} tasks; rerun the comparison"
            )
        trials = 100 * per_task_trials(compare_dir, method, results)
        half = [_ci95(trials[:, t].tolist()) for t in range(T)]
        err = error_bars(list(mean), half, 0.0, 100.0) if len(trials) > 1 else None
        ax.bar(x + (i - (M - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=method)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45 if T > 6 else 0, ha="right" if T > 6 else "center", fontsize=7)
    _error_axis(ax, "test error")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, out)


def sweep_table(sweep_dir: PathLike) -> dict[str, list[tuple[int, float, float | None]]]:
    """``{method: [(T, test_error_mean, test_error_ci95 or None), ...]}`` over a sweep dir."""
    table: dict[str, list[tuple[int, float, float | None]]] = {}
    for T, cdir in sweep_points(sweep_dir):
        for method, m in load_compare(cdir)["methods"].items():
            table.setdefault(method, []).append(
                (T, float(m["test_error_mean"]), m.get("test_error_ci95"))
            )
    return table


def plot_sweep(sweep_dir: PathLike, out: PathLike) -> Path:
    """Mean test error vs number of tasks T per method, with 95% CI bars (Fig. 6a)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, points in sweep_table(sweep_dir).items():
        t, mean, ci = zip(*points)
        pct, half = [100 * m for m in mean], [None if c is None else 100 * c for c in ci]
        ax.errorbar(t, pct, yerr=error_bars(pct, half, 0.0, 100.0), marker="o", capsize=3, label=method)
    ax.set_xlabel("number of tasks T")
    _error_axis(ax, "mean test error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
