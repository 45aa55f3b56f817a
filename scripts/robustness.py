"""Issue 21: the robustness grid -- does a soft-ordering variant die where parallel ordering trains?

Every (scale, learning rate, variant, seed) is one short run with run health (``train/health.py``);
a run is *dead* when its last depth is entirely dead for some task, and *at chance* when its mean
training loss is still >= 95% of the class-prior loss at the end. The table gives, per cell, the
dead / at-chance counts and the mean validation error (the selection criterion) +- 95% CI.

    python scripts/robustness.py run --scales omniglot-105 --data-dir ../shared/data
    python scripts/robustness.py table        # results/robustness/results.md and .json
    python scripts/robustness.py figure --out docs/figures/omniglot105_health.png   # the mechanism
    python scripts/robustness.py choose --out results/omniglot50/tune/chosen-105.yaml  # the recipe

Runs go to ``results/robustness/<scale>/lr=<lr>/<variant>/seed<s>/`` (config.yaml, metrics.jsonl,
result.json are committed; checkpoints are not). A finished run is read back, a started one resumes
from its checkpoint: run the same command again after a stop. Jobs run seed by seed, so the first
seeds of every cell finish first (a screen), and two at a time (one thread each) on two cores.
Seeds 100.. are disjoint from the comparison seeds 0..9.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from softorder.benchmarks import benchmark_config, get
from softorder.experiments.compare import die_with_parent, run_trial
from softorder.report.health import plot_health
from softorder.stats import fmt_pm, mean_ci95
from softorder.train.rundir import RunDir
from softorder.train.yaml12 import dump_yaml, read_mapping

OUT = Path("results/robustness")
FIRST_SEED = 100

#: Each scale: its benchmark, the settings every variant shares, the learning rates, the seeds.
SCALES: dict[str, dict[str, Any]] = {
    "omniglot-105": {  # the paper's images and filters, 5 alphabets: the death of issue 21
        "benchmark": "omniglot", "lrs": (3e-3, 1e-2, 1e-3), "seeds": 5,  # most telling first
        "set": {"tasks": 5, "image_size": 105, "padding": 0, "channels": 53, "dropout": 0.0, "init": "he",
                "steps": 200, "batch_size": 8, "eval_every": 25, "checkpoint_every": 50,
                "select": "val_error", "threads": 1},
    },
    "omniglot-28": {  # the CPU scale of the 50-alphabet tables
        "benchmark": "omniglot", "lrs": (3e-3, 1e-2), "seeds": 3,
        "set": {"tasks": 50, "image_size": 28, "padding": 1, "channels": 24, "dropout": 0.0, "init": "he",
                "steps": 400, "batch_size": 8, "eval_every": 50, "checkpoint_every": 100,
                "select": "val_error", "threads": 1},
    },
    "uci": {"benchmark": "uci", "lrs": (1e-3, 1e-2, 3e-2), "seeds": 5, "set": {"threads": 1}},
    "mnist": {"benchmark": "mnist", "lrs": (1e-3, 1e-2, 3e-2), "seeds": 5, "set": {"threads": 1}},
}

#: The variants compared: the soft-ordering mixtures by name, and parallel ordering. Each starts from
#: the benchmark's shipped per-ordering settings (e.g. UCI's dropout) and sets these on top.
VARIANTS: dict[str, dict[str, Any]] = {
    "rms": {"ordering": "soft", "soft_norm": "none", "depth_norm": "rms"},  # Eq. 7, unit-RMS depth inputs
    "l2": {"ordering": "soft", "soft_norm": "l2", "depth_norm": "none"},  # the L2 mixture (issue 11)
    "plain": {"ordering": "soft", "soft_norm": "none", "depth_norm": "none"},  # Eq. 7 as in the paper
    "parallel": {"ordering": "parallel", "depth_norm": "none"},
}


def jobs(scales: list[str], variants: list[str], data_dir: str | None) -> list[tuple[dict[str, Any], Path]]:
    """(config, run folder) of every run, seed-major: every cell's first seed comes first."""
    out = []
    for name in scales:
        scale = SCALES[name]
        overrides = {**scale["set"], **({"data_dir": data_dir} if data_dir else {})}
        cfg, per = benchmark_config(scale["benchmark"], overrides=overrides,
                                    orderings=sorted({VARIANTS[v]["ordering"] for v in variants}))
        for s in range(scale["seeds"]):
            for lr in scale["lrs"]:
                for v in variants:
                    ordering = VARIANTS[v]["ordering"]
                    seed = FIRST_SEED + s
                    c = cfg.replace(**{**per.get(ordering, {}), **VARIANTS[v], "lr": lr, "seed": seed})
                    out.append((c.to_dict(), OUT / name / f"lr={lr:g}" / v / f"seed{seed}"))
    return out


def run(args: argparse.Namespace) -> None:
    todo = [(c, d) for c, d in jobs(args.scales, args.variants, args.data_dir)
            if not (d / "result.json").exists()]
    print(f"{len(todo)} runs to train", flush=True)
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"),
                             initializer=die_with_parent) as pool:
        futures = {pool.submit(run_trial, c, str(d), 1): d for c, d in todo}
        for fut in as_completed(futures):
            r = fut.result()
            print(f"{futures[fut]}: val error {100 * r['mean_val_error']:.2f}%, {r.get('health')}")
    table(args)


def _peak_dead(run: Path) -> float:
    """The largest fraction of dead units at the last depth over a run's evaluations (a run can
    lose most of its last depth and recover; the end-of-run verdict alone does not show it)."""
    records = RunDir(run).read_metrics()
    return max(((r.get("health") or {}).get("dead") or [0.0])[-1] for r in records) if records else 0.0


def table(args: argparse.Namespace) -> None:
    """results.json and results.md from every finished run under OUT."""
    rows = []
    for name, scale in SCALES.items():
        for lr in sorted(scale["lrs"]):
            for v in VARIANTS:
                cell = OUT / name / f"lr={lr:g}" / v
                found = sorted(cell.glob("seed*/result.json"))
                results = [json.loads(p.read_text()) for p in found]
                if not results:
                    continue
                peaks = [_peak_dead(p.parent) for p in found]
                health = [r.get("health") or {} for r in results]
                val = [100 * r["mean_val_error"] for r in results]
                test = [100 * r["mean_test_error"] for r in results]
                rows.append({
                    "scale": name, "lr": lr, "variant": v, "runs": len(results),
                    "dead": sum(bool(h.get("dead_last_depth")) for h in health),
                    "at_chance": sum(bool(h.get("at_chance")) for h in health),
                    "peak_dead_last_depth": sum(peaks) / len(peaks),
                    "val_error": mean_ci95(val), "test_error": mean_ci95(test),
                    "seeds": [r["seed"] for r in results],
                })
    (OUT / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| scale | lr | variant | runs | dead last depth | at chance | last depth dead, peak % | "
             "val error % | test error % |", "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['scale']} | {r['lr']:g} | {r['variant']} | {r['runs']} | {r['dead']} | "
                     f"{r['at_chance']} | {100 * r['peak_dead_last_depth']:.0f} | "
                     f"{fmt_pm(*r['val_error'])} | {fmt_pm(*r['test_error'])} |")
    (OUT / "results.md").write_text(
        "# Robustness grid (issue 21)\n\n`python scripts/robustness.py table`. Dead last depth / at "
        "chance: runs flagged by run health at the end; peak: the largest fraction of dead units at the "
        "last depth over a run's evaluations, mean over runs. Variants: "
        + "; ".join(f"`{k}` = {v}" for k, v in VARIANTS.items()) + "\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))
    if getattr(args, "docs", None):
        _replace_table(args.docs, lines)


def _replace_table(doc: Path, lines: list[str]) -> None:
    """Put the grid's table in ``doc`` in place of the one there (the block of rows that starts
    with the same header line)."""
    if len(lines) <= 2:
        raise SystemExit(f"no finished runs under {OUT}: {doc} left as it is")
    text = doc.read_text().split("\n")
    if lines[0] not in text:
        raise SystemExit(f"{doc} has no grid table to replace (no line {lines[0]!r})")
    start = text.index(lines[0])
    end = start
    while end < len(text) and text[end].startswith("|"):
        end += 1
    doc.write_text("\n".join([*text[:start], *lines, *text[end:]]))
    print(f"the table in {doc} replaced")


#: How the figure draws each variant.
STYLES = {"rms": "b-", "l2": "r:", "plain": "r-", "parallel": "k--"}


def figure(args: argparse.Namespace) -> None:
    """Run health (activation RMS and dead units per depth over training) of every variant of one
    cell and seed: the mechanism behind the table."""
    cell = OUT / args.scale / f"lr={args.lr:g}"
    metrics = {v: cell / v / f"seed{args.seed}" / "metrics.jsonl" for v in VARIANTS}
    runs = {f"{v} (seed {args.seed})": m.parent for v, m in metrics.items()
            if m.exists() and m.stat().st_size}
    styles = {f"{v} (seed {args.seed})": STYLES[v] for v in VARIANTS}
    print(f"figure: {plot_health(runs, args.out, styles)}")


#: Keys of a scale that are how the grid runs, not what a comparison at that scale should run.
GRID_ONLY = {"tasks", "steps", "eval_every", "checkpoint_every", "threads"}


def choose(args: argparse.Namespace) -> None:
    """The settings of one scale chosen on VALIDATION (mean validation error over the grid's seeds,
    at least ``--min-runs`` finished runs per cell): soft ordering's variant and lr among the soft
    variants, parallel ordering's lr; single and permuted orderings take parallel ordering's lr
    (the grid does not run them). Written as a ``softorder compare --config`` file: the benchmark's
    YAML with the scale's image keys and the chosen per-ordering settings."""
    scale, by_seed = SCALES[args.scale], {}
    for lr in scale["lrs"]:
        for v in VARIANTS:
            found = sorted((OUT / args.scale / f"lr={lr:g}" / v).glob("seed*/result.json"))
            if len(found) >= args.min_runs:
                runs = [json.loads(p.read_text()) for p in found]
                by_seed[(v, lr)] = {r["seed"]: r["mean_val_error"] for r in runs}
    # every cell on the same seeds: seeds differ by a few points, and cells finish seed by seed
    seeds = sorted(set.intersection(*(set(d) for d in by_seed.values()))) if by_seed else []
    if len(seeds) < args.min_runs:
        raise SystemExit(f"{args.scale}: fewer than {args.min_runs} seeds finished in every candidate cell")
    cells = {c: sum(d[k] for k in seeds) / len(seeds) for c, d in by_seed.items()}
    soft = [c for c in cells if VARIANTS[c[0]]["ordering"] == "soft"]
    parallel = [c for c in cells if c[0] == "parallel"]
    if not soft or not parallel:
        raise SystemExit(f"{args.scale}: no soft or parallel cell has {args.min_runs} finished runs yet")
    best_soft, best_parallel = min(soft, key=cells.__getitem__), min(parallel, key=cells.__getitem__)
    base = read_mapping(get(scale["benchmark"]).config_path)
    base.pop("quick", None)
    base.update({k: v for k, v in scale["set"].items() if k not in GRID_ONLY})
    soft_settings = {k: v for k, v in VARIANTS[best_soft[0]].items() if k != "ordering"}
    shipped = base.get("orderings") or {}
    chosen = {"single": {"lr": best_parallel[1]}, "parallel": {"lr": best_parallel[1]},
              "permuted": {"lr": best_parallel[1]}, "soft": {**soft_settings, "lr": best_soft[1]}}
    base["orderings"] = {o: {**shipped.get(o, {}), **settings} for o, settings in chosen.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# {args.scale}: chosen on validation by scripts/robustness.py choose (mean validation "
              f"error over seeds {', '.join(map(str, seeds))}): soft {best_soft[0]} lr {best_soft[1]:g} "
              f"({100 * cells[best_soft]:.2f}%), parallel lr {best_parallel[1]:g} "
              f"({100 * cells[best_parallel]:.2f}%); single and permuted take parallel's lr\n")
    args.out.write_text(header + dump_yaml(base))
    print(header.strip())
    for (v, lr), err in sorted(cells.items(), key=lambda c: c[1]):
        print(f"  {v:<9} lr {lr:<6g} mean val error {100 * err:.2f}%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train the missing runs, then write the table")
    r.add_argument("--scales", type=lambda s: s.split(","), default=list(SCALES))
    r.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS))
    r.add_argument("--data-dir")
    r.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    t = sub.add_parser("table", help="write results.md / results.json from the finished runs")
    t.add_argument("--docs", type=Path, help="also replace the grid table in this file (docs/results.md)")
    f = sub.add_parser("figure", help="run health of every variant of one cell and seed")
    f.add_argument("--scale", default="omniglot-105", choices=list(SCALES))
    f.add_argument("--lr", type=float, default=3e-3)
    f.add_argument("--seed", type=int, default=FIRST_SEED)
    f.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("choose", help="the settings of one scale chosen on validation, as a config file")
    c.add_argument("--scale", default="omniglot-105", choices=list(SCALES))
    c.add_argument("--min-runs", type=int, default=3)
    c.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    for bad in [s for s in getattr(args, "scales", []) if s not in SCALES]:
        raise SystemExit(f"unknown scale {bad!r}; choose from {', '.join(SCALES)}")
    for bad in [v for v in getattr(args, "variants", []) if v not in VARIANTS]:
        raise SystemExit(f"unknown variant {bad!r}; choose from {', '.join(VARIANTS)}")
    {"run": run, "table": table, "figure": figure, "choose": choose}[args.command](args)


if __name__ == "__main__":
    main()
