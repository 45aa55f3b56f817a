"""Why plain Eq. 7 dies on the quick Omniglot conv core: run health of plain, L2 and parallel runs.

Reads compare folders run with health every 25 steps (issue 11, section 1):

    softorder compare omniglot --quick --orderings soft,parallel --trials 5 --set eval_every=25 \\
        --data-dir ../shared/data --out runs/death/plain
    softorder compare omniglot --quick --orderings soft --trials 5 --set eval_every=25 \\
        --set soft_norm=l2 --data-dir ../shared/data --out runs/death/l2
    python scripts/omniglot_death.py runs/death --out docs/figures/omniglot_death.png \\
        --results results/omniglot-death

and draws, per depth, the activation RMS and the dead-unit fraction over training for two plain
soft trials that die, two that live, their L2-mixture twins (same seeds) and parallel ordering.
``--results`` copies each run's small files (config.yaml, result.json, metrics.jsonl) and writes a
per-trial table (results.md / results.json) there.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from softorder.report.health import plot_health
from softorder.train.rundir import RunDir

RUN_FILES = (RunDir.CONFIG, RunDir.RESULT, RunDir.METRICS)


def trials(compare_dir: Path, method: str) -> list[Path]:
    return sorted((compare_dir / "runs" / method).glob("trial*"), key=lambda p: int(p.name[5:]))


def summary(root: Path) -> list[dict[str, object]]:
    """One row per finished run: variant, method, trial, test error, health at the end."""
    rows = []
    for variant in ("plain", "l2"):
        for method in ("soft", "parallel"):
            for run in trials(root / variant, method):
                if not RunDir(run).finished():
                    continue
                r = json.loads(RunDir(run).result.read_text())
                last = RunDir(run).read_metrics()[-1]["health"]
                rows.append({
                    "variant": variant if method == "soft" else "-", "method": method, "run": str(run),
                    "seed": r["seed"], "test_error": r["mean_test_error"],
                    "dead_last_depth_end": last["dead"][-1], "rms_end": last["rms"],
                    "unhealthy": (r.get("health") or {}).get("unhealthy"),
                })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("root", type=Path, help="folder holding plain/ and l2/ compare folders")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--results", type=Path, help="copy the runs' small files and a table here")
    args = p.parse_args()
    rows = summary(args.root)
    plain = [r for r in rows if r["method"] == "soft" and r["variant"] == "plain"]
    dead = [r for r in plain if r["unhealthy"]][:2]
    alive = [r for r in plain if not r["unhealthy"]][:2]
    runs, styles = {}, {}
    for group, fmt in ((dead, "r-"), (alive, "b-")):
        for r in group:
            runs[f"plain seed {r['seed']}"] = Path(str(r["run"]))
            styles[f"plain seed {r['seed']}"] = fmt
            twin = args.root / "l2" / "runs" / "soft" / Path(str(r["run"])).name
            if RunDir(twin).finished():
                runs[f"L2 seed {r['seed']}"], styles[f"L2 seed {r['seed']}"] = twin, fmt.replace("-", ":")
    par = trials(args.root / "plain", "parallel")
    if par:
        runs[f"parallel {par[0].name}"], styles[f"parallel {par[0].name}"] = par[0], "k--"
    print(f"figure: {plot_health(runs, args.out, styles)}")
    lines = ["| variant | method | seed | test error % | dead units, last depth (end) | unhealthy |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['method']} | {r['seed']} | {100 * float(r['test_error']):.1f} | "
                     f"{float(r['dead_last_depth_end']):.2f} | {r['unhealthy']} |")
    print("\n".join(lines))
    if args.results:
        for r in rows:
            run = Path(str(r["run"]))
            dest = args.results / run.relative_to(args.root)
            dest.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                shutil.copy2(run / name, dest / name)
        (args.results / "results.md").write_text("\n".join(lines) + "\n")
        (args.results / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
