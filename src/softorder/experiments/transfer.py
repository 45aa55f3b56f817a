"""``softorder transfer``: learned layers on new tasks, over several source runs and adaptation
seeds, paired (the building-blocks test of the paper's Sec. 6, repeated).

1. **Sources.** ``compare`` trains soft and parallel ordering, ``--sources`` trials each (trial k has
   the config's seed + k), on the benchmark's tasks (an Omniglot run of the 30 background
   alphabets: ``--set alphabet_set=background --set tasks=30``).
2. **Adaptations** to ``--new-tasks`` tasks the sources never saw, for every kept number of
   drawings per class in ``--shots``. A *unit* is a source index i and an adaptation seed
   s = 0, 1, ... (the new tasks' splits, kept drawings and initialisation, the same for every
   mode):

   * ``soft`` — the layers of soft source i, frozen, with a new S (from zero) and new decoders;
   * ``parallel`` — the core of parallel source i, frozen, in parallel order, with new decoders;
   * ``scratch`` — each new task alone, trained from scratch; it uses no source weights, so it runs
     once per seed s (with the config of parallel source 0).

   An adaptation keeps its source's settings (lr, dropout, ...) unless ``--adapt-set`` changes them.
3. **Table** (``OUT/results.json``, ``OUT/results.md``): per shots, each mode's mean test error
   ± 95% CI over its independent runs (soft and parallel: over sources, each the mean over seeds;
   scratch: over seeds), and paired tests: soft vs parallel over the sources (means over seeds)
   and over the seeds (means over sources), soft and parallel vs scratch over the seeds. The units
   (i, s) are not independent (a source's units share its layers, a seed's share its splits), so
   no test treats them as such.

Resumable: a finished unit (``transfer_unit.json`` records its settings and the SHA-256 of its
source's ``best.pt``) is not redone while both match (scratch: its settings alone); a source trial
whose ``best.pt`` is missing (a fresh clone holds only the small files) is trained again, and its
units with it when its weights come out different.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from softorder import benchmarks
from softorder.atomic import atomic_write_bytes, read_json_object, write_json
from softorder.experiments.adapt import adapt_config, adapt_shots, new_tasks_for, source_fingerprint
from softorder.experiments.adapt_cli import parse_shots
from softorder.experiments.compare import compare
from softorder.experiments.pool import completed, worker_pool
from softorder.report.transfer import TRANSFER_NOTE, transfer_tables
from softorder.stats import mean_ci95, paired_test
from softorder.train.config import LOCATIONS, Config
from softorder.train.config_files import parse_overrides
from softorder.train.rundir import RESULTS_JSON, RESULTS_MD, RunDir

SOURCES = ("soft", "parallel")  # the ordering each mode's layers come from
UNIT_FILE = "transfer_unit.json"

Unit = tuple[str, int | None, int]  # (mode, source index or None for scratch, adaptation seed)


def _source(out: Path, ordering: str, i: int) -> Path:
    return out / "sources" / "runs" / ordering / f"trial{i}"


def _unit_dir(out: Path, unit: Unit) -> Path:
    mode, i, s = unit
    return out / "adapt" / (f"{mode}-seed{s}" if i is None else f"{mode}-source{i}-seed{s}")


def _unit_source(out: Path, unit: Unit) -> Path:
    mode, i, _ = unit
    return _source(out, "parallel" if mode == "scratch" else mode, i or 0)


class _Units:
    """Each unit's settings and, once finished on them, its summary."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.out, self.settings = out, settings
        self._prints: dict[Path, str] = {}

    def fingerprint(self, run: Path) -> str:
        if run not in self._prints:
            self._prints[run] = source_fingerprint(run)
        return self._prints[run]

    def expected(self, unit: Unit) -> dict[str, Any]:
        source = benchmarks.load_config(RunDir(_unit_source(self.out, unit)).config, saved=True).to_dict()
        for key in LOCATIONS:  # paths of this machine, not settings
            source.pop(key, None)
        marker: dict[str, Any] = {"unit": list(unit), "settings": self.settings, "source_config": source}
        if unit[0] != "scratch":  # scratch uses the source's config, not its weights
            marker["source_sha256"] = self.fingerprint(_unit_source(self.out, unit))
        return json.loads(json.dumps(marker))  # as it reads back from the file

    def done(self, unit: Unit) -> dict[str, Any] | None:
        folder = _unit_dir(self.out, unit)
        if read_json_object(folder / UNIT_FILE) != self.expected(unit):
            return None
        return read_json_object(folder / "adapt_summary.json")  # None: a unit cut short


def _adapt_unit(out: str, unit: Unit, marker: dict[str, Any], shots: list[int | None], new_tasks: int,
                skip: int, overrides: dict[str, Any], data_dir: str | None) -> None:
    root = Path(out)
    mode, _, seed = unit
    folder = _unit_dir(root, unit)
    adapt_shots(_unit_source(root, unit), [mode], folder, shots, new_tasks, skip,
                cfg_overrides={**overrides, "seed": seed}, data_dir=data_dir)
    write_json(folder / UNIT_FILE, marker)  # last: the unit counts as done from here on


def _check(cfg: Config, per: dict[str, dict[str, Any]], new_tasks: int, skip: int,
           overrides: dict[str, Any]) -> None:
    """Refuse what would only fail in the adaptations, after the sources have trained."""
    if cfg.benchmark not in benchmarks.adaptable():
        raise ValueError(f"{cfg.benchmark} has no new tasks to adapt to; transfer takes "
                         f"{', '.join(benchmarks.adaptable())}")
    if "seed" in overrides:
        raise ValueError("--adapt-set seed: the adaptation seeds are 0..seeds-1 (--seeds); leave it out")
    for mode, o in (("soft", "soft"), ("parallel", "parallel"), ("scratch", "parallel")):
        benchmarks.check(adapt_config(cfg.replace(**per.get(o, {})), mode, new_tasks, overrides))
    new_tasks_for(cfg, cfg.benchmark, new_tasks, skip, cfg.data.data_dir)  # enough new tasks?


def transfer(
    cfg: Config,
    out: str | Path,
    per_ordering: dict[str, dict[str, Any]] | None = None,
    sources: int = 3,
    seeds: int = 3,
    shots: list[int | None] | None = None,
    new_tasks: int = 5,
    skip: int = 0,
    adapt_overrides: dict[str, Any] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train the sources of ``cfg`` (``per_ordering``: their settings), adapt them, write the
    table into ``out`` and return it (see the module docstring). ``workers`` processes (default
    1; compare's default, the CPU cores, for the sources) share the adaptations."""
    if sources < 1 or seeds < 1:
        raise ValueError(f"transfer needs at least one source and one seed, got {sources} and {seeds}")
    per, overrides = dict(per_ordering or {}), dict(adapt_overrides or {})
    _check(cfg, per, new_tasks, skip, overrides)
    out, shots = Path(out), shots or [None]
    labels = [str(k or "all") for k in shots]
    settings = {"shots": labels, "new_tasks": new_tasks, "skip": skip, "adapt_overrides": dict(overrides)}
    if (workers or 1) > 1 and cfg.run.threads is None:  # not a setting of the results: not in the record
        overrides.setdefault("threads", 1)  # one thread per process, as compare's pool does
    for o in SOURCES:  # small files alone (a fresh clone): train the run again to get its weights
        for i in range(sources):
            run = _source(out, o, i)
            if RunDir(run).finished() and not RunDir(run).best.is_file():
                print(f"transfer: {run} has no best.pt; training it again", flush=True)
                shutil.rmtree(run)
    src = compare(cfg, out / "sources", SOURCES, sources, per_ordering=per, workers=workers, progress=False)
    book = _Units(out, settings)
    units: list[Unit] = [(m, i, s) for m in SOURCES for s in range(seeds) for i in range(sources)]
    units += [("scratch", None, s) for s in range(seeds)]
    todo = [u for u in units if book.done(u) is None]
    print(f"transfer: {len(units) - len(todo)} of {len(units)} adaptations done; {len(todo)} to run",
          flush=True)
    for u in todo:  # on other settings or weights, or cut short: the unit starts again
        shutil.rmtree(_unit_dir(out, u), ignore_errors=True)
    if todo:
        args = (shots, new_tasks, skip, overrides, cfg.data.data_dir)
        # the first failure (or Ctrl-C, SIGTERM) ends every unit at once; finished units stay done
        with worker_pool(workers or 1) as pool:
            jobs = {pool.submit(_adapt_unit, str(out), u, book.expected(u), *args): u for u in todo}
            for job in completed(jobs):
                job.result()
                print(f"transfer: {_unit_dir(out, jobs[job]).name} done", flush=True)
    done: dict[Unit, dict[str, Any]] = {}
    for u in units:
        got = book.done(u)
        if got is None:
            raise RuntimeError(f"transfer: {_unit_dir(out, u)} did not read back as finished on these "
                               "settings; delete that folder and run the command again")
        done[u] = got
    summary = summarise(done, sources, seeds, labels)
    summary["settings"] = settings
    summary["sources"] = {o: src["methods"][o]["test_error_mean"] for o in SOURCES}
    summary["new_task_names"] = done[units[0]].get("tasks")
    write_json(out / RESULTS_JSON, summary)
    atomic_write_bytes(out / RESULTS_MD, transfer_markdown(summary).encode())
    return summary


def summarise(
    done: dict[Unit, dict[str, Any]], sources: int, seeds: int, labels: list[str]
) -> dict[str, Any]:
    """Per shots label: each mode's errors, mean and CI, and the paired tests (module docstring)."""
    def err(unit: Unit, label: str) -> float:
        return float(done[unit]["mean_test_error"][label][unit[0]])

    table: dict[str, Any] = {}
    for label in labels:
        grid = {m: [[err((m, i, s), label) for s in range(seeds)] for i in range(sources)] for m in SOURCES}
        by_source = {m: [sum(row) / seeds for row in g] for m, g in grid.items()}
        by_seed = {m: [sum(g[i][s] for i in range(sources)) / sources for s in range(seeds)]
                   for m, g in grid.items()}
        scratch = [err(("scratch", None, s), label) for s in range(seeds)]
        table[label] = {
            "errors": {**grid, "scratch": scratch},  # soft / parallel: [source][seed]
            "mean_ci95": {**{m: mean_ci95(v) for m, v in by_source.items()}, "scratch": mean_ci95(scratch)},
            "tests": {
                "soft vs parallel (over sources)": paired_test(by_source["soft"], by_source["parallel"]),
                "soft vs parallel (over seeds)": paired_test(by_seed["soft"], by_seed["parallel"]),
                "soft vs scratch (over seeds)": paired_test(by_seed["soft"], scratch),
                "parallel vs scratch (over seeds)": paired_test(by_seed["parallel"], scratch),
            },
        }
    return {"num_sources": sources, "num_seeds": seeds, "shots": table}


def transfer_markdown(summary: dict[str, Any]) -> str:
    """The table of :func:`transfer` as Markdown."""
    n, s = summary["num_sources"], summary["num_seeds"]
    lines = [f"# Transfer: {n} source runs per ordering x {s} adaptation seeds", "", TRANSFER_NOTE]
    for header, rows in transfer_tables(summary):
        lines += ["", f"| {' | '.join(header)} |", f"|---|{'---|' * (len(header) - 1)}"]
        lines += [f"| {' | '.join(row)} |" for row in rows]
    src = summary.get("sources") or {}
    if src:
        lines += ["", "Source runs, mean test error on their own tasks: "
                  + ", ".join(f"{o} {100 * e:.1f}%" for o, e in src.items())]
    return "\n".join(lines) + "\n"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``softorder transfer`` to the command line."""
    p = subparsers.add_parser("transfer", help="learned layers on new tasks: several sources and seeds, "
                              "paired (Sec. 6)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", choices=benchmarks.adaptable())
    p.add_argument("--config", help="a YAML config (default: the benchmark's)")
    p.add_argument("--sources", type=int, default=3, help="source runs per ordering (default 3)")
    p.add_argument("--seeds", type=int, default=3, help="adaptation seeds (default 3)")
    p.add_argument("--shots", type=parse_shots, default=[None], metavar="K[,K...]",
                   help="training drawings kept per class: numbers and/or 'all' (default all)")
    p.add_argument("--new-tasks", type=int, default=5, help="number of new tasks (default 5)")
    p.add_argument("--skip", type=int, default=0, help="omniglot: skip this many new alphabets first")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key of the source runs")
    p.add_argument("--adapt-set", dest="adapt_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config key of the adaptation runs, e.g. steps=600")
    p.add_argument("--workers", type=int, help="processes: the sources' compare (default: the CPU cores) and "
                   "the adaptations (default 1; with more, one thread each unless threads is set)")
    p.add_argument("--data-dir", help="data directory (default ~/.cache/softorder)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_transfer)


def cmd_transfer(args: argparse.Namespace) -> int:
    overrides = [*args.overrides, *([f"data_dir={args.data_dir}"] if args.data_dir else [])]
    cfg, per = benchmarks.benchmark_config(args.benchmark, False, overrides, args.config, orderings=SOURCES)
    summary = transfer(cfg, args.out, per, args.sources, args.seeds, args.shots, args.new_tasks, args.skip,
                       parse_overrides(args.adapt_overrides), args.workers)
    print(transfer_markdown(summary), end="")
    print(f"results in {Path(args.out) / RESULTS_MD} and {Path(args.out) / RESULTS_JSON}")
    return 0
