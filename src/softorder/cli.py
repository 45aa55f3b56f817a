"""The ``softorder`` command line: train, compare, data, experiment, report, adapt, predict, bench."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

from softorder import __version__, bench, benchmarks
from softorder.data.download import fetch, resolve_data_dir
from softorder.experiments import adapt_cli, analysis_cli, predict_cli, transfer
from softorder.experiments.compare import check_orderings, check_request, compare
from softorder.nn.orderings import ORDERINGS, PAPER_ORDERINGS
from softorder.report import cli as report_cli
from softorder.train.config import Config, keys_of
from softorder.train.distributed import is_main
from softorder.train.rundir import RESULTS_MD, RunDir
from softorder.train.trainer import TrainingDiverged


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run from a YAML config (or a benchmark name)")
    names = ", ".join(benchmarks.names())
    p.add_argument("config", nargs="?", help=f"CONFIG.yaml, or a benchmark name ({names})")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set ordering=parallel",
    )
    p.add_argument("--out", help="run directory (default runs/<benchmark>-<ordering>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--data-dir", help="data directory (default ~/.cache/softorder)")
    p.add_argument("--quick", action="store_true", help="use the benchmark's quick settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--precision", choices=["fp32", "bf16", "fp16"], help="autocast precision (config key precision)"
    )
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the model for training (config key compile)"
    )
    p.add_argument(
        "--backbone-weights",
        metavar="PATH",
        help="celeba: local torchvision ResNet-50 ImageNet state_dict (config key backbone_weights)",
    )
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    # --set values are converted by each key's type; paths are taken literally (never parsed)
    overrides = list(args.overrides) + ([f"data_dir={args.data_dir}"] if args.data_dir else [])
    overrides += [f"precision={args.precision}"] if args.precision else []
    overrides += ["compile=true"] if args.compile else []
    if args.backbone_weights:  # absolute: a --resume elsewhere finds it
        overrides.append(f"backbone_weights={Path(args.backbone_weights).expanduser().resolve()}")
    if args.resume:
        out = Path(args.resume)
        if not RunDir(out).config.is_file():
            raise FileNotFoundError(f"{out} holds no run to resume (no config.yaml); check the path")
        cfg = benchmarks.load_config(RunDir(out).config, overrides, saved=True)
    else:
        if not args.config:
            raise ValueError("give a CONFIG.yaml or a benchmark name, or --resume RUN_DIR")
        path = Path(args.config)
        if path.is_dir() and RunDir(path).config.is_file():
            raise ValueError(f"{path} is a run folder; to continue it: softorder train --resume {path}")
        if path.suffix in (".yaml", ".yml") or path.exists():
            cfg, per = benchmarks.benchmark_config("", args.quick, overrides, path=path)
        else:
            cfg, per = benchmarks.benchmark_config(args.config, args.quick, overrides)
        cfg = cfg.replace(**per.get(cfg.model.ordering, {}))  # the command line already won in per
        out = Path(args.out or f"runs/{cfg.benchmark}-{cfg.model.ordering}-{time.strftime('%Y%m%d-%H%M%S')}")
    r = benchmarks.train(cfg, out, resume=bool(args.resume), quiet=args.quiet)
    if not is_main():  # under torchrun only rank 0 reports
        return 0
    print(
        f"{cfg.benchmark} / {cfg.model.ordering}: mean test error {100 * r['mean_test_error']:.2f}%, "
        f"test loss {r['mean_test_loss']:.4f} (best step {r['best_step']} of {r['steps']})"
    )
    print(f"run written to {out}/ (result.json, metrics.jsonl, tb/, checkpoint.pt)")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="all methods × trials on a benchmark, with CIs and p-values")
    p.add_argument("benchmark", help=", ".join(benchmarks.names()))
    p.add_argument(
        "--orderings",
        default=",".join(PAPER_ORDERINGS),
        help=f"comma list of methods, any of {','.join(ORDERINGS)} (default {','.join(PAPER_ORDERINGS)})",
    )
    p.add_argument("--trials", type=int, default=None, help="trials per method (default 5; --quick: 3)")
    p.add_argument("--quick", action="store_true", help="a small, fast configuration (CPU minutes)")
    p.add_argument("--tasks", type=int, help=f"number of tasks (config key tasks; {tasks_limits()})")
    p.add_argument("--test-fraction", type=float,
                   help=key_help("test_fraction", "fraction of drawings per character for test"))
    p.add_argument("--image-size", type=int,
                   help=key_help("image_size", "image size: images resized to it (celeba: the trunk's "
                                 "input)"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for every method (repeatable; wins over the per-ordering "
                   "section), e.g. --set steps=500")
    p.add_argument("--config", help="a YAML config instead of the shipped one")
    p.add_argument("--out", help="output directory (default runs/compare-<benchmark>-<time>)")
    p.add_argument("--workers", type=int, help="parallel runs (default: CPU cores)")
    p.add_argument(
        "--vectorise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train each method's trials as one vectorised model (default: on for "
        f"{', '.join(vectorised())}); --no-vectorise runs one process per trial",
    )
    p.add_argument("--data-dir", help="data directory (default ~/.cache/softorder)")
    p.set_defaults(func=cmd_compare)


#: compare's flags that set a config key: (flag, key, attribute of args)
COMPARE_KEY_FLAGS = (("--data-dir", "data_dir", "data_dir"), ("--tasks", "tasks", "tasks"),
                     ("--test-fraction", "test_fraction", "test_fraction"),
                     ("--image-size", "image_size", "image_size"))


def _flag_overrides(args: argparse.Namespace, flags: Sequence[tuple[str, str, str]]) -> list[str]:
    """``key=value`` for every flag given; a flag whose key is not one of the benchmark's is refused
    naming the flag."""
    bench = benchmarks.get(args.benchmark).name  # an unknown benchmark is refused by name first
    out = []
    for flag, key, attr in flags:
        value = getattr(args, attr)
        if value is None:
            continue
        if key not in keys_of(bench):
            owners = ", ".join(b for b in benchmarks.names() if key in keys_of(b))
            raise ValueError(f"{flag} (config key {key}) applies to {owners}, not to {bench}; leave it out")
        out.append(f"{key}={value}")
    return out


def vectorised() -> list[str]:
    """The benchmarks whose trials ``compare`` vectorises by default."""
    return [b for b in benchmarks.names() if benchmarks.get(b).vectorise]


def key_help(key: str, text: str) -> str:
    """A flag's help naming its config key and the benchmarks that have it."""
    owners = [b for b in benchmarks.names() if key in keys_of(b)]
    return f"{', '.join(owners)}: {text} (config key {key})"


def tasks_limits() -> str:
    """The most tasks each benchmark has (``max_tasks`` of its default config)."""
    fixed = {b: benchmarks.get(b).max_tasks(Config.from_dict({"benchmark": b})) for b in benchmarks.names()}
    said = ", ".join(f"{b} {m}" for b, m in fixed.items() if m is not None)
    return f"at most {said}; the others: as many as their data holds"


def cmd_compare(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + _flag_overrides(args, COMPARE_KEY_FLAGS)
    orderings = [o.strip() for o in args.orderings.split(",") if o.strip()]
    check_orderings(orderings)  # before the config is checked against each of them
    cfg, per = benchmarks.benchmark_config(args.benchmark, args.quick, overrides, path=args.config,
                                           orderings=orderings)
    trials = args.trials if args.trials is not None else (3 if args.quick else 5)
    out = Path(
        args.out
        or f"runs/compare-{args.benchmark}{'-quick' if args.quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    check_request(cfg, orderings, trials, args.workers, args.vectorise)  # refuse first, then print
    print(
        f"softorder compare {args.benchmark}: {', '.join(orderings)} × {trials} trials -> {out}/", flush=True
    )
    s = compare(cfg, out, orderings, trials, per, workers=args.workers, vectorise=args.vectorise)
    print()
    print((out / RESULTS_MD).read_text())
    reused = f" ({s['trials_reused']} trials reused)" if s.get("trials_reused") else ""
    print(f"finished in {s['wall_time_s']:.0f} s{reused}; results in {out}/results.json and {out}/results.md")
    print(f"see the plots: softorder report {out}")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download benchmark data (checksums verified)")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("download", help="download a dataset into the data directory")
    d.add_argument("name", help="uci, mnist or omniglot")
    d.add_argument("--root", "--data-dir", dest="root", help="data directory (default ~/.cache/softorder)")
    d.add_argument("--base-url", help=argparse.SUPPRESS)  # tests point this at 127.0.0.1
    d.set_defaults(func=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.root)
    paths = fetch(args.name, root, base_url=args.base_url)
    for path in paths:
        print(path)
    print(f"{args.name}: {len(paths)} file(s) verified in {root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softorder",
        description="Deep multitask learning through soft layer ordering (Meyerson & Miikkulainen, 2018).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_compare(sub)
    _add_data(sub)
    for module in (analysis_cli, report_cli, bench, adapt_cli, transfer, predict_cli):
        module.register(sub)
    for command in sub.choices.values():  # a module docstring as help: for users, not developers
        command.description = plain_help(command.description)
    return parser


_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]+\.)?([\w]+)`")  # :class:`~a.b.C` -> C
_EMPHASIS = re.compile(r"(?<![\w*])\*(\w[^*\n]*?)\*(?![\w*])")  # *unit* -> unit


def plain_help(text: str | None) -> str | None:
    """``text`` (often a module docstring) as ``--help`` shows it: without reST markup (````x````,
    ``**x**``, ``*x*``, ``:func:`x```) and without the notes to developers (a paragraph
    "(Over N lines: …)")."""
    if not text:
        return text
    paragraphs = [p for p in text.split("\n\n") if not p.lstrip().startswith("(Over ")]
    text = _ROLE.sub(r"\1", "\n\n".join(paragraphs))
    return _EMPHASIS.sub(r"\1", text.replace("``", "").replace("**", ""))


def _version() -> str:
    return f"softorder {__version__}"


#: Errors that mean a wrong input, a missing file or a folder in the way: one line, exit status 2.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
               NotADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; a user error is one line ``softorder: error: …`` (exit 2), with the
    traceback when ``SOFTORDER_DEBUG=1``."""
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_interrupts():
            return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if os.environ.get("SOFTORDER_DEBUG") == "1":
            raise
        print(f"softorder: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"softorder: training diverged: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM
        print("softorder: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cluster scheduler's stop) ends a command as Ctrl-C does: workers stopped, runs
    resumable, ``softorder: interrupted``, exit status 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename and e.strerror:  # PermissionError and friends
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
