"""What the learned orderings that followed soft ordering record (``result.json``): how much a gated
core's mixture varies across the inputs of one task, and where a router settled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from softorder.report.plots import PathLike, _grid, load_result, save_figure, task_names
from softorder.train.rundir import RunDir


def has_gate_spread(run_dir: PathLike) -> bool:
    """True when the run's ``result.json`` has a gated core's per-input weight statistics."""
    try:
        return "gate_weights_std" in load_result(run_dir)
    except (FileNotFoundError, ValueError):
        return False


def route_rows(result: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Per task of a routed run: its name, the layers it chose at depths 1..K, and the step from
    which its choice stopped changing; empty for other runs."""
    choice, settled = result.get("route_choice"), result.get("route_settled_step")
    if not choice or not settled:
        return []
    names = result.get("task_names") or [f"task{t}" for t in range(len(choice))]
    return [(n, " → ".join(f"F{j + 1}" for j in c), int(s)) for n, c, s in zip(names, choice, settled)]


def plot_gate_spread(run_dir: PathLike, out: PathLike) -> Path:
    """Per task, the depth × layer grid of the standard deviation over test inputs of a gated core's
    mixing weights (the mean printed in each cell): 0 everywhere is soft ordering's one mixture per
    task; the larger, the more each input takes its own path."""
    res = load_result(run_dir)
    mean, std = np.asarray(res["gate_weights_mean"], float), np.asarray(res["gate_weights_std"], float)
    T, K, L = std.shape
    names = task_names(run_dir, T)
    rows, cols = _grid(T)
    size = (1.0 + 0.55 * L * cols, 0.6 + 0.55 * K * rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    top = max(float(std.max()), 1e-6)
    for t in range(rows * cols):
        ax = axes[t // cols][t % cols]
        if t >= T:
            ax.axis("off")
            continue
        im = ax.imshow(std[t], vmin=0.0, vmax=top, cmap="magma", aspect="equal")
        if K <= 6 and L <= 6:
            for k in range(K):
                for j in range(L):
                    ax.text(j, k, f"{mean[t, k, j]:.2f}", ha="center", va="center", fontsize=5,
                            color="white" if std[t, k, j] < 0.6 * top else "black")
        ax.set_title(names[t], fontsize=8)
        ax.set_xticks(range(L), [str(j + 1) for j in range(L)])
        ax.set_yticks(range(K), [str(k + 1) for k in range(K)])
        ax.tick_params(labelsize=7)
        if t % cols == 0:
            ax.set_ylabel("depth", fontsize=8)
        if t // cols == rows - 1 or t + cols >= T:
            ax.set_xlabel("layer", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="std over test inputs")
    fig.suptitle("gated ordering: how much each input's mixture differs (numbers: the mean weight)",
                 fontsize=9)
    return save_figure(fig, out)


def trials_summary(run_dirs: Sequence[PathLike]) -> list[tuple[str, str]]:
    """Over a method's trials (its finished runs): how much a gated core's weights vary across one
    task's test inputs (their std, averaged over tasks, depths and layers, and at its largest), or
    where routers settled: distinct routes among the tasks, how many use no layer twice, and the
    median step from which a task's route stopped changing. Empty for other runs."""
    results = [load_result(r) for r in run_dirs if RunDir(r).finished()]
    gated = [np.asarray(r["gate_weights_std"], float) for r in results if "gate_weights_std" in r]
    routed = [r for r in results if r.get("route_choice") and r.get("route_settled_step")]
    rows: list[tuple[str, str]] = []
    if gated:
        means, tops = [float(s.mean()) for s in gated], [float(s.max()) for s in gated]
        rows += [("trials", str(len(gated))),
                 ("std of a mixing weight over a task's test inputs, mean", _span(means, "{:.3f}")),
                 ("std of a mixing weight over a task's test inputs, largest", _span(tops, "{:.2f}"))]
    if routed:
        routes = [[tuple(c) for c in r["route_choice"]] for r in routed]
        distinct = [len(set(rs)) for rs in routes]
        once = [sum(len(set(c)) == len(c) for c in rs) for rs in routes]  # K = L: permutations
        settled = [float(np.median(r["route_settled_step"])) for r in routed]
        tasks = len(routes[0])
        rows += [("trials", str(len(routed))),
                 (f"distinct routes among the {tasks} tasks", _span(distinct, "{:d}")),
                 ("routes that use no layer twice (with K = L: permutations)", _span(once, "{:d}")),
                 ("median step from which a task's route stopped changing", _span(settled, "{:.0f}"))]
    return rows


def _span(values: Sequence[float] | Sequence[int], fmt: str) -> str:
    """``lo–hi`` over trials (one value when they agree)."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}–{hi}"
