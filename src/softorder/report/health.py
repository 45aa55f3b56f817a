"""Plots of run health (``softorder.train.health``): per depth, the activation RMS and the fraction
of dead units over training, one line per run; the figure behind "Run health" in docs/results.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import ticker

from softorder.report.plots import PathLike, load_metrics, save_figure


def has_health(run_dir: PathLike) -> bool:
    """True when the run logged health records (runs since run health was added)."""
    try:
        return any(r.get("health") for r in load_metrics(run_dir))
    except (FileNotFoundError, ValueError):
        return False


def plot_health(runs: Mapping[str, PathLike], out: PathLike, styles: Mapping[str, str] | None = None) -> Path:
    """Two rows (activation RMS, dead-unit fraction) × one column per depth; a line per run
    ``label -> run_dir`` (``styles``: an optional matplotlib format per label, e.g. ``"r--"``)."""
    series = {label: [r for r in load_metrics(d) if r.get("health")] for label, d in runs.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        raise ValueError("none of the runs logged health records (metrics.jsonl 'health')")
    depth = max(len(v[0]["health"]["rms"]) for v in series.values())
    # one y axis per row: tick labels only at the left, where they cannot run into a neighbour
    fig, axes = plt.subplots(2, depth, figsize=(3.0 * depth, 5.2), sharex=True, sharey="row", squeeze=False)
    for label, recs in series.items():
        steps = [r["step"] for r in recs]
        fmt = (styles or {}).get(label, "-")
        for k in range(len(recs[0]["health"]["rms"])):
            axes[0, k].plot(steps, [r["health"]["rms"][k] for r in recs], fmt, label=label, lw=1.2)
            axes[1, k].plot(steps, [r["health"]["dead"][k] for r in recs], fmt, label=label, lw=1.2)
    axes[0, 0].set_yscale("log")  # the row shares its y axis
    low, high = axes[0, 0].get_ylim()
    # 1, 2, 5 per decade over a few decades; over many, a label per decade (or fewer): never crowded
    subs = (1.0, 2.0, 5.0) if math.log10(high / low) <= 3 else (1.0,)
    for k in range(depth):
        axes[0, k].set_title(f"depth {k + 1}", fontsize=9)
        axes[0, k].yaxis.set_major_locator(ticker.LogLocator(subs=subs, numticks=8))
        axes[0, k].yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))  # 0.5, not 5×10⁻¹
        axes[0, k].yaxis.set_minor_formatter(ticker.NullFormatter())
        axes[1, k].set_ylim(-0.02, 1.02)
        axes[1, k].set_xlabel("step")
        for ax in axes[:, k]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("activation RMS (log)")
    axes[1, 0].set_ylabel("fraction of dead units")
    handles, labels = axes[0, 0].get_legend_handles_labels()  # below the panels: it hides no curve
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(len(labels), 4), frameon=False)
    fig.subplots_adjust(bottom=0.18)
    return save_figure(fig, out)
