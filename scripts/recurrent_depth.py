"""Issue 24, part 3: what more depths than layers buy -- recurrent depth (the paper's Sec. 6).

Soft ordering with K = L, 2L and 3L depths over the same L shared layers (each layer reused at every
depth, like an unrolled recurrence), against its hard counterpart: parallel ordering with the layers
cycled K/L times (``depth: K`` on ``ordering: parallel``). Same step budget, the benchmark's shipped
per-method settings, paired trials (trial k has seed k, so the same data split at every K).

    python scripts/recurrent_depth.py run uci --trials 10 --data-dir ../shared/data
    python scripts/recurrent_depth.py run mnist --trials 5
    python scripts/recurrent_depth.py table      # results/recurrent-depth/results.md and .json

K = L reads the benchmark's committed comparison (``BASE``: the same shipped settings with the
default depth); K = 2L, 3L run into ``results/recurrent-depth/<benchmark>/K<K>/`` (``compare``:
finished trials are reused, so a stopped run continues where it stopped).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from softorder.benchmarks import benchmark_config
from softorder.experiments.compare import compare
from softorder.report.plots import load_result, run_dirs
from softorder.stats import fmt_p, fmt_pm, mean_ci95, paired_test

OUT = Path("results/recurrent-depth")
#: The committed K = L comparison of each benchmark (its soft and parallel trials are reused).
#: Not Omniglot: each of its conv layers max-pools, so 28x28 images are 1x1 after L = 4 depths and
#: no K > L fits (105x105: at most 5); the layers cannot be reused as a recurrence there.
BASE = {"uci": Path("results/uci-10"), "mnist": Path("results/mnist-5")}
ORDERINGS = ("parallel", "soft")


def run(benchmark: str, trials: int, overrides: list[str], factors: tuple[int, ...],
        workers: int | None = None) -> None:
    """Compare parallel and soft ordering at K = m L for each factor m > 1 (``overrides``: KEY=VALUE
    for both; they must match the K = L comparison's, which is not rerun)."""
    if benchmark not in BASE:
        raise SystemExit(f"no committed K = L comparison for {benchmark}; one of {', '.join(BASE)}")
    cfg, per = benchmark_config(benchmark, overrides=overrides, orderings=ORDERINGS)
    for m in factors:
        if m == 1:
            continue  # K = L: the committed comparison (BASE)
        depth = m * cfg.model.num_layers
        compare(cfg.replace(depth=depth), OUT / benchmark / f"K{depth}", ORDERINGS, trials, per_ordering=per,
                workers=workers)


def _trials(folder: Path, ordering: str) -> list[dict[str, Any]]:
    return [load_result(run) for run in run_dirs(folder, ordering)]


def table() -> dict[str, Any]:
    rows = []
    for benchmark, base in BASE.items():
        if not (OUT / benchmark).is_dir():
            continue
        layers = json.loads((base / "results.json").read_text())["config"]["num_layers"]
        folders = {layers: base} | {int(p.name[1:]): p for p in sorted((OUT / benchmark).glob("K*"))
                                    if (p / "results.json").is_file()}
        for ordering in ORDERINGS:
            first = [r["mean_test_error"] for r in _trials(base, ordering)]
            for depth, folder in sorted(folders.items()):
                runs = _trials(folder, ordering)
                errors = [r["mean_test_error"] for r in runs]
                mean, half = mean_ci95(errors)
                n = min(len(first), len(errors))
                test = paired_test(errors[:n], first[:n]) if depth != layers else None
                rows.append({
                    "benchmark": benchmark, "ordering": ordering, "depth": depth, "layers": layers,
                    "trials": len(runs), "test_error_mean": mean, "test_error_ci95": half,
                    "train_time_s": sum(r["train_time_s"] for r in runs) / len(runs),
                    "vs_K_equals_L": test,
                })
    lines = ["# Recurrent depth: K depths over the same L layers (scripts/recurrent_depth.py)", "",
             "| benchmark | ordering | K | trials | test error % (mean ± 95% CI) | vs K = L (paired) "
             "| p (paired t) | train s / trial |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["vs_K_equals_L"]
        diff = f"{100 * t['mean_diff']:+.2f} pp ({t['wins']}/{t['losses']})" if t else "—"
        lines.append(f"| {r['benchmark']} | {r['ordering']} | {r['depth']} ({r['depth'] // r['layers']}L) | "
                     f"{r['trials']} | {fmt_pm(r['test_error_mean'], r['test_error_ci95'], 100)} | {diff} | "
                     f"{fmt_p(t['p_value']) if t else '—'} | {r['train_time_s']:.0f} |")
    lines += ["", "K = L is each benchmark's committed comparison; parallel ordering at K = mL applies "
              "layers 1..L m times in order. Trial k has seed k at every K (paired: the same split)."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=2))
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the K = 2L, 3L comparisons of a benchmark")
    r.add_argument("benchmark", help=", ".join(sorted(BASE)))
    r.add_argument("--trials", type=int, required=True)
    r.add_argument("--factors", default="2,3", help="K / L values to run (default 2,3)")
    r.add_argument("--data-dir")
    r.add_argument("--workers", type=int, help="trials at once (default: compare's, the CPU cores)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("table", help="the table of every finished K")
    args = p.parse_args()
    if args.cmd == "run":
        overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
        run(args.benchmark, args.trials, overrides, tuple(int(f) for f in args.factors.split(",")),
            args.workers)
    else:
        table()


if __name__ == "__main__":
    main()
