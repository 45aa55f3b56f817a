"""The ``softorder report DIR`` command: an HTML report of a folder that softorder wrote."""

from __future__ import annotations

import argparse
from typing import Any

from softorder.report.html import write_report


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report DIR`` to the ``softorder`` command's subparsers."""
    p = subparsers.add_parser(
        "report",
        help="write DIR/report/index.html for a run, compare, transfer, adapt or sweep directory",
        description="Write DIR/report/index.html (results tables, per-task table, plots of the "
        "soft-ordering weights S and learning curves, the config and the versions used) with the "
        "PNG plots beside it.",
    )
    p.add_argument("dir", metavar="DIR", help="a run dir (result.json), compare or transfer dir "
                   "(results.json), adapt dir (adapt_summary.json) or sweep dir (T<k>/results.json)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Entry point of ``softorder report``; returns the exit code."""
    index = write_report(args.dir)
    print(f"report written to {index}")
    return 0
