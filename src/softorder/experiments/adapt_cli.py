"""``softorder adapt`` on the command line (the library is ``adapt.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from softorder import benchmarks
from softorder.experiments.adapt import DEFAULT_MODES, MODES, adapt_shots
from softorder.experiments.analysis_cli import format_table
from softorder.train.config_files import parse_overrides


def parse_shots(value: str) -> list[int | None]:
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
    p.add_argument("--shots", type=parse_shots, default=[None], metavar="K[,K...]",
                   help="training drawings kept per class: a number, 'all' (default) or a comma list "
                        "(e.g. 1,5,all: one adaptation per value, in OUT/shots-K)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES),
                   help=f"comma list of {', '.join(MODES)} (default {','.join(DEFAULT_MODES)})")
    p.add_argument("--out", help="output folder (default RUN_DIR/adapt)")
    p.add_argument("--data-dir", help="data directory (default: the run's, else ~/.cache/softorder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of the adaptation runs, e.g. --set steps=500")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_adapt)


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``softorder adapt``: one adaptation per mode and shot count, a table, JSON results."""
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    out = Path(args.out) if args.out else Path(args.run_dir) / "adapt"
    keys = ("mode", "mean_test_error", "trainable_parameters", "frozen_parameters", "best_step")

    def show(label: str, where: Path, s: dict[str, Any]) -> None:
        rows = [tuple(r[k] for k in keys) for r in s["results"]]
        print(f"shots {label} ({len(s['tasks'])} new {s['benchmark']} task(s)) -> {where}/")
        print(format_table(["mode", "mean test error", "trainable", "frozen", "best step"], rows), flush=True)

    print(f"softorder adapt {args.run_dir}: modes {', '.join(modes)}", flush=True)
    summary = adapt_shots(args.run_dir, modes, out, args.shots, args.new_tasks, args.skip, args.benchmark,
                          parse_overrides(args.overrides), args.data_dir, args.quiet, show)
    table = summary["mean_test_error"]
    if len(args.shots) > 1:
        print("\nmean test error by shots per class:")
        print(format_table(["mode", *table], [(m, *(table[k][m] for k in table)) for m in modes]))
        print(f"results in {out / 'adapt_summary.json'} and {out}/shots-*/adapt_results.json")
    else:
        print(f"results in {out / 'adapt_results.json'}")
    return 0
