"""``softorder adapt`` on the command line (the library is ``adapt.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from softorder import benchmarks
from softorder.experiments.adapt import MODES, load_source, new_tasks_for, run_modes, subsample_shots
from softorder.experiments.analysis_cli import format_table
from softorder.train.config_files import parse_overrides


def _parse_shots(value: str) -> list[int | None]:
    """``--shots``: a comma list of counts per class and/or ``all`` (``None``)."""
    out: list[int | None] = []
    for item in (v.strip() for v in value.split(",")):
        if item == "all":
            out.append(None)
            continue
        try:
            shots = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--shots takes numbers or 'all', got {item!r}") from None
        if shots < 1:
            raise argparse.ArgumentTypeError(f"--shots must be at least 1 (or 'all'), got {shots}")
        out.append(shots)
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"--shots lists a value twice: {value!r}")
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``softorder adapt`` to the command line."""
    p = subparsers.add_parser(
        "adapt", help="reuse a finished run's learned layers, frozen, on new tasks (Sec. 6)"
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run (config.yaml and best.pt)")
    p.add_argument("--benchmark", choices=benchmarks.adaptable(), help="default: the run's benchmark")
    p.add_argument("--new-tasks", type=int, default=5, help="number of new tasks (default 5)")
    p.add_argument("--skip", type=int, default=0,
                   help="omniglot: skip this many alphabets after the run's own (default 0)")
    p.add_argument("--shots", type=_parse_shots, default=[None], metavar="K[,K...]",
                   help="training drawings kept per class: a number, 'all' (default) or a comma list "
                        "(e.g. 1,5,all: one adaptation per value, in OUT/shots-K)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--out", help="output folder (default RUN_DIR/adapt)")
    p.add_argument("--data-dir", help="data directory (default: the run's, else ~/.cache/softorder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of the adaptation runs, e.g. --set steps=500")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``softorder adapt``: one adaptation per mode and shot count, a table, JSON results."""
    source, _ = load_source(args.run_dir)
    benchmark = args.benchmark or source.benchmark
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    overrides = parse_overrides(args.overrides)
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    seed = source.replace(seed=overrides.get("seed", source.seed)).seed  # new tasks' splits, shots, init
    all_tasks = new_tasks_for(source, benchmark, args.new_tasks, args.skip, args.data_dir, seed)
    for k, v in benchmarks.get(benchmark).adapt_overrides(source).items():  # e.g. the new tasks' set
        overrides.setdefault(k, v)
    out = Path(args.out) if args.out else Path(args.run_dir) / "adapt"
    several = len(args.shots) > 1
    table: dict[str, dict[str, float]] = {}
    for shots in args.shots:
        label = str(shots or "all")
        tasks = [subsample_shots(t, shots, seed * 1000 + i) for i, t in enumerate(all_tasks)]
        where = out / f"shots-{label}" if several else out
        print(f"softorder adapt {args.run_dir}: {len(tasks)} new {benchmark} task(s), "
              f"shots {label}, modes {', '.join(modes)} -> {where}/", flush=True)
        s = run_modes(args.run_dir, tasks, modes, where, overrides, quiet=args.quiet,
                      extra={"benchmark": benchmark, "shots": shots})
        keys = ("mode", "mean_test_error", "trainable_parameters", "frozen_parameters", "best_step")
        rows = [tuple(r[k] for k in keys) for r in s["results"]]
        print(format_table(["mode", "mean test error", "trainable", "frozen", "best step"], rows))
        table[label] = {r["mode"]: r["mean_test_error"] for r in s["results"]}
    if several:
        names = [t.name for t in all_tasks]
        summary = {"source": str(args.run_dir), "tasks": names, "mean_test_error": table}
        (out / "adapt_summary.json").write_text(json.dumps(summary, indent=2))
        print("\nmean test error by shots per class:")
        print(format_table(["mode", *table], [(m, *(table[k][m] for k in table)) for m in modes]))
        print(f"results in {out / 'adapt_summary.json'} and {out}/shots-*/adapt_results.json")
    else:
        print(f"results in {out / 'adapt_results.json'}")
    return 0
