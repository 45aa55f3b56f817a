"""``softorder predict`` on the command line (the library is ``predict.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from softorder import benchmarks
from softorder.experiments.predict import choose_task, load_run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``softorder predict`` to the command line."""
    kinds = ", ".join(benchmarks.predictable())
    p = subparsers.add_parser("predict", help=f"a finished run's predictions on new inputs ({kinds} runs)")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a finished run (config.yaml, preprocessing.json, best.pt)")
    p.add_argument("input", metavar="INPUT",
                   help="a CSV file (tabular runs), or an image file or folder of images (imagefolder runs)")
    p.add_argument("--task", metavar="NAME", help="the task to predict (default: the run's only task)")
    p.add_argument("--out", default="predictions.csv",
                   help="the CSV written: id, label, p_<class> per input (default predictions.csv)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict, say what was ignored, write the CSV (atomically: all of it or nothing)."""
    out = Path(args.out)
    if out.is_dir():  # before the predictions, which may take long
        raise IsADirectoryError(f"--out {out} is a folder; name the CSV file, e.g. --out "
                                f"{out / 'predictions.csv'}")
    run = load_run(args.run_dir)
    task = choose_task(run, args.task)
    predictions = run.predict(task, args.input)
    for note in predictions.notes:
        print(f"softorder: note: {note}", file=sys.stderr)
    predictions.write_csv(out)
    print(f"{len(predictions.ids)} prediction(s) of task {task} written to {out} "
          f"(id, label, {', '.join(f'p_{c}' for c in predictions.classes)})")
    return 0
