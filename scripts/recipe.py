"""Choose each method's hyper-parameters on the VALIDATION split only.

Every (ordering, candidate setting) pair is trained for ``--trials`` seeds with the same budget;
the table shows mean validation loss / error (the selection criterion) and, for information only,
the test error of the same runs. The chosen setting per ordering is the one with the lowest mean
validation metric (``--select``).

    python scripts/recipe.py uci --trials 3 --out runs/recipe-uci \\
        --grid 'base:{}' 's_lr=0.1:{s_lr: 0.1}' 'he:{init: he}' --data-dir ../shared/data

Seeds used here (``--seed``, default 100) are disjoint from the compare seeds (0..trials-1), so
the final comparison is run on splits the tuning never saw.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from softorder.benchmarks import benchmark_config, get
from softorder.experiments.compare import check_orderings, compare
from softorder.nn.orderings import ORDERINGS, PAPER_ORDERINGS
from softorder.train.config import unused_keys
from softorder.train.config_files import parse_overrides
from softorder.train.yaml12 import dump_yaml, read_mapping, read_yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("benchmark")
    p.add_argument("--grid", nargs="+", required=True, help="NAME:YAML-MAPPING of overrides")
    p.add_argument("--orderings", default=",".join(PAPER_ORDERINGS), help=f"any of {','.join(ORDERINGS)}")
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--select", default="mean_val_loss", choices=["mean_val_loss", "mean_val_error"])
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--data-dir")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workers", type=int)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    overrides = [*args.overrides, f"seed={args.seed}"] + (
        [f"data_dir={args.data_dir}"] if args.data_dir else []
    )
    orderings = args.orderings.split(",")
    check_orderings(orderings)
    cfg, per = benchmark_config(args.benchmark, args.quick, overrides, orderings=orderings)
    flat = cfg.to_dict()
    rows = []
    tried: dict[tuple[str, str], str] = {}  # (ordering, effective setting) -> the grid item that ran it
    for item in args.grid:
        name, sep, mapping = item.partition(":")
        if not sep:
            raise SystemExit(f"--grid items are NAME:MAPPING, got {item!r}")
        setting = read_yaml(mapping, name) or {}
        out = Path(args.out) / name
        # keys the method's net does not read (S's s_lr for a hard ordering, a gate's width for any
        # but gated: config.unused_keys) change nothing, nor does a value the method's baseline
        # already has: a method runs a setting only when what is left of it has not run yet (so
        # 'plain-eq7:{soft_norm: none}' runs soft alone)
        todo = []
        for o in orderings:
            baseline = {**flat, **per.get(o, {})}
            unused = set(unused_keys({**baseline, **setting, "ordering": o}))
            effective = {k: v for k, v in setting.items() if k not in unused and baseline.get(k) != v}
            key = (o, json.dumps(effective, sort_keys=True))
            if key not in tried:
                tried[key] = name
                todo.append(o)
        if not todo:
            continue
        # the benchmark's per-ordering settings (e.g. omniglot's soft: {soft_norm: l2}, less what
        # --set gives) are each method's baseline; the grid item, what is tuned, wins over both
        per_ordering = {o: {**per.get(o, {}), **setting} for o in todo}
        s = compare(cfg, out, todo, args.trials, per_ordering=per_ordering, workers=args.workers,
                    progress=False)
        for o in todo:
            runs = [json.loads((out / r / "result.json").read_text()) for r in s["methods"][o]["runs"]]
            rows.append(
                {
                    "ordering": o,
                    "setting": name,
                    "overrides": setting,
                    "mean_val_loss": sum(r["mean_val_loss"] for r in runs) / len(runs),
                    "mean_val_error": sum(r["mean_val_error"] for r in runs) / len(runs),
                    "test_error (info)": s["methods"][o]["test_error_mean"],
                    "best_step": s["methods"][o]["best_step_mean"],
                }
            )
        print(f"{name}: done in {s['wall_time_s']:.0f} s", flush=True)
    print(
        f"\n{'ordering':<9} {'setting':<22} {'val loss':>9} {'val err %':>9} "
        f"{'test err %':>10} {'best step':>9}"
    )
    chosen = {}
    for o in orderings:
        mine = sorted((r for r in rows if r["ordering"] == o), key=lambda r: r[args.select])
        chosen[o] = mine[0]["setting"]
        for r in mine:
            mark = "  <- chosen" if r is mine[0] else ""
            print(
                f"{o:<9} {r['setting']:<22} {r['mean_val_loss']:9.4f} {100 * r['mean_val_error']:9.2f} "
                f"{100 * r['test_error (info)']:10.2f} {r['best_step']:9.0f}{mark}"
            )
    Path(args.out, "recipe.json").write_text(json.dumps({"rows": rows, "chosen": chosen}, indent=2))
    # A config for `softorder compare --config`: the shipped YAML with the chosen per-ordering settings.
    base = read_mapping(get(args.benchmark).config_path)
    settings = {r["setting"]: r["overrides"] for r in rows}
    base["orderings"] = chosen_orderings(base.get("orderings") or {}, settings, chosen)
    for key in parse_overrides(args.overrides):  # budget overrides (e.g. steps) apply to the comparison
        base[key] = flat[key]  # as the config reads it: numbers parsed, paths literal
    Path(args.out, "chosen.yaml").write_text(dump_yaml(base))
    print(f"\nchosen by {args.select}: {chosen}; config written to {Path(args.out, 'chosen.yaml')}")


def chosen_orderings(
    shipped: dict[str, dict[str, Any]], settings: dict[str, dict[str, Any]], chosen: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The per-ordering section of ``chosen.yaml``: each tuned method's shipped settings with its
    chosen grid item on top; the methods not tuned here keep their shipped settings."""
    return {**shipped, **{o: {**shipped.get(o, {}), **settings[c]} for o, c in chosen.items()}}


if __name__ == "__main__":
    main()
