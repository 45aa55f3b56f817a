"""``softorder report DIR``: a self-contained HTML report of a run, compare, transfer, adapt or sweep
directory.

Writes ``DIR/report/index.html`` with the PNG plots of :mod:`softorder.report.plots` beside it: the
results tables, the per-task table, the soft-ordering plots of Sec. 5 (Fig. 4), the config as YAML,
and the versions of the software used. Every piece of text from the run goes through
``html.escape``.
"""

from __future__ import annotations

import datetime
import functools
import html
import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from softorder.report import health as health_plots
from softorder.report import learned, plots
from softorder.report.transfer import TRANSFER_NOTE, transfer_tables
from softorder.stats import fmt_p, fmt_pm
from softorder.train.config import unused_keys
from softorder.train.rundir import RESULTS_JSON, RunDir

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #333; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
.meta { color: #666; font-size: .85em; } .warn { color: #a33; }
"""


#: What ``softorder experiment NAME`` writes, by its JSON file: that folder has its plots already.
EXPERIMENT_FILES = {"planted.json": "planted", "fit_random.json": "fit-random",
                    "layer_behaviour.json": "layer-behaviour"}
ADAPT_FILES = ("adapt_summary.json", "adapt_results.json")


def detect_kind(path: Path) -> str:
    """``'run'``, ``'compare'``, ``'transfer'``, ``'adapt'`` or ``'sweep'`` for a results directory;
    a folder of softorder's that has no report, or none of softorder's, is a one-line error."""
    if RunDir(path).result.is_file() or RunDir(path).metrics.is_file():
        return "run"
    if (path / RESULTS_JSON).is_file():
        results = plots.load_compare(path)
        if isinstance(results, dict) and "methods" in results:
            return "compare"
        if isinstance(results, dict) and "num_sources" in results and "shots" in results:
            return "transfer"
        raise ValueError(f"{path / RESULTS_JSON} is neither a `softorder compare` nor a `softorder "
                         "transfer` results file; pass the folder that command wrote")
    if any((path / name).is_file() for name in ADAPT_FILES):
        return "adapt"
    for name, experiment in EXPERIMENT_FILES.items():
        if (path / name).is_file():
            raise ValueError(f"{path} is the output of `softorder experiment {experiment}` ({name}): its "
                             "plots are the PNG files beside it; `softorder report` takes a run, "
                             "compare, transfer, adapt or sweep folder")
    if path.name == "report" and (path / "index.html").is_file():
        raise ValueError(f"{path} is a report already; pass the folder it reports on: {path.parent}")
    try:
        plots.sweep_points(path)
    except FileNotFoundError:
        raise ValueError(
            f"{path} is not a results directory: expected result.json/metrics.jsonl (a run of "
            "`softorder train`), results.json (a `softorder compare` or `transfer` folder), "
            "adapt_summary.json (`softorder adapt`) or T<k>/results.json (a sweep)"
        ) from None
    return "sweep"


def versions() -> dict[str, str]:
    """Versions of the software behind a report."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("softorder", "torch", "numpy", "matplotlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


# -- HTML pieces --------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _diff(c: dict[str, Any]) -> str:
    d = c.get("mean_diff")
    if d is None:
        return ""
    return f"{100 * d:+.2f} pp" if c.get("metric") == "test_error" else f"{d:+.4f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An escaped HTML table; floats shown with 4 decimals."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(v))}</td>" for v in row) + "</tr>\n" for row in rows)
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<table{attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>\n"


class _Page:
    """Collects sections and plots of one report."""

    def __init__(self, out_dir: Path, title: str) -> None:
        self.out_dir, self.title = out_dir, title
        self.parts: list[str] = []
        self.failed: list[str] = []
        self.config_note = ""

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{_e(text)}</h2>\n")

    def add(self, raw_html: str) -> None:
        self.parts.append(raw_html)

    def plot(self, name: str, caption: str, draw: Callable[[Path], Path]) -> None:
        """Draw ``name``.png beside index.html; a plot that cannot be drawn becomes a note."""
        try:
            draw(self.out_dir / name)
        except (ValueError, FileNotFoundError, KeyError, IndexError) as err:
            self.failed.append(f"{name}: {err}")
            self.parts.append(f'<p class="warn">{_e(caption)}: not drawn ({_e(err)})</p>\n')
            return
        self.parts.append(
            f'<figure><img src="{_e(name)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>\n"
        )

    def render(self, source: Path, config: Any) -> str:
        vers = versions()
        unused = unused_keys(config) if isinstance(config, dict) else []
        shown = {k: v for k, v in config.items() if k not in unused} if unused else config
        cfg = yaml.safe_dump(shown, sort_keys=False) if config else "(no config found)\n"
        if unused:
            cfg += f"# not read by this net, left out: {', '.join(unused)}\n"
        now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{_e(self.title)}</h1>\n<p class=\"meta\">source: {_e(source)}<br>generated {_e(now)}</p>\n"
            + "".join(self.parts)
            + f"<h2>Config{_e(f' ({self.config_note})' if self.config_note else '')}</h2>\n"
            + f"<pre>{_e(cfg)}</pre>\n<h2>Versions</h2>\n"
            + table(["software", "version"], list(vers.items()))
            + "</body>\n</html>\n"
        )


# -- the three kinds of report ------------------------------------------------------------------
def _run_report(run: Path, page: _Page) -> Any:
    res = plots.load_result(run) if RunDir(run).result.is_file() else {}
    if res:
        page.h2("Result")
        keys = ["benchmark", "ordering", "seed", "best_step", "steps", "mean_test_error",
                "mean_test_loss", "mean_val_error", "mean_val_loss", "train_time_s"]
        page.add(table(["key", "value"], [_in_percent(k, res[k]) for k in keys if k in res], "results"))
        names = res.get("task_names") or [f"task{t}" for t in range(len(res.get("test_error", [])))]
        cols = [c for c in ("test_error", "test_loss", "val_error", "val_loss")
                if len(res.get(c) or []) == len(names)]
        page.h2("Per task")
        page.add(table(["task", *(_in_percent(c, None)[0] for c in cols)],
                       [[n, *(_in_percent(c, res[c][t])[1] for c in cols)] for t, n in enumerate(names)],
                       "per-task"))
    page.h2("Learning curves")
    page.plot("curves.png", "validation error per task over steps",
              lambda out: plots.plot_run_curves(run, out))
    if health_plots.has_health(run):
        page.h2("Run health")
        page.plot("health.png", "per depth: activation RMS and fraction of dead units on the probe rows",
                  lambda out: health_plots.plot_health({run.name: run}, out))
    if plots.has_s(run):
        page.h2("Soft ordering (Sec. 5, Fig. 4)")
        label = plots.mixing_label(run)
        page.plot("s_heatmaps.png", f"{label} per task at the best step; red: the strongest path",
                  lambda out: plots.plot_s_heatmaps(run, out))
        _learned(run, page, "")
        page.plot("s_trajectories.png", f"{label} of the first two tasks over training",
                  lambda out: plots.plot_s_trajectories(run, out))
    cfg_path = RunDir(run).config
    return yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else None


def _in_percent(key: str, value: Any) -> tuple[str, Any]:
    """``(label, value)`` of a result key: error rates in %, as every report table shows them."""
    return (f"{key} %", _pct(value)) if "error" in key and not isinstance(value, list) else (key, value)


def _methods_table(results: dict[str, Any]) -> str:
    rows = []
    for method, m in results["methods"].items():
        rows.append([method, fmt_pm(m.get("test_error_mean"), m.get("test_error_ci95"), 100),
                     fmt_pm(m.get("test_loss_mean"), m.get("test_loss_ci95"), digits=4),
                     len(m.get("trials") or []),
                     ", ".join(f"trial {k}" for k in m.get("unhealthy_trials") or []) or "—"])
    header = ["method", "test error % (mean ± 95% CI)", "test loss (mean ± 95% CI)", "trials",
              "unhealthy trials (dead last depth or loss at chance)"]
    return table(header, rows, "results")


def _compare_report(cdir: Path, page: _Page) -> Any:
    results = plots.load_compare(cdir)
    methods = list(results["methods"])
    page.h2(f"Results: {results.get('benchmark', '')}")
    page.add(_methods_table(results))
    comps = results.get("comparisons") or []
    if comps:
        page.h2("Comparisons")
        page.add(table(["a", "b", "metric", "mean diff (a − b; errors in pp)", "p-value", "test"],
                       [[c.get("a"), c.get("b"), c.get("metric"), _diff(c), fmt_p(c.get("p_value")),
                         c.get("test")] for c in comps], "comparisons"))
    first = results["methods"][methods[0]]["per_task_error_mean"]
    names = results.get("task_names") or [f"task{t}" for t in range(len(first))]
    page.h2("Per task: mean test error %")
    page.add(table(["task", *methods],
                   [[n, *(_pct(results["methods"][m]["per_task_error_mean"][t]) for m in methods)]
                    for t, n in enumerate(names)], "per-task"))
    page.plot("per_task.png", "test error per task and method (bars: 95% CI over trials)",
              lambda out: plots.plot_per_task(cdir, out))
    _method_settings(results, methods, page)
    page.h2("Learning curves")
    page.plot("learning_curves.png", "mean validation error over steps (band: min..max over trials)",
              lambda out: plots.plot_learning_curves(cdir, out))
    for method in methods:
        soft_runs = [r for r in plots.run_dirs(cdir, method, results) if plots.has_s(r)]
        if soft_runs:
            run = soft_runs[0]
            page.h2(f"Soft ordering of {method}, {run.relative_to(cdir)} (Sec. 5, Fig. 4)")
            label = plots.mixing_label(run)
            page.plot(f"s_heatmaps_{method}.png", f"{label} per task ({method}); red: the strongest path",
                      functools.partial(plots.plot_s_heatmaps, run))
            page.plot(f"s_trajectories_{method}.png", f"{label} of the first two tasks ({method})",
                      functools.partial(plots.plot_s_trajectories, run))
            _learned(run, page, f"_{method}")
            if summary := learned.trials_summary(soft_runs):
                page.add(table(["over the trials (range)", method], summary, "learned-trials"))
    return results.get("config")


def _learned(run: Path, page: _Page, suffix: str) -> None:
    """Next to S: how a gated run's mixture varies across test inputs, or where a router settled."""
    if learned.has_gate_spread(run):
        page.plot(f"gate_spread{suffix}.png", "gated ordering: std over test inputs of each task's "
                  "mixing weights (numbers: their mean)", functools.partial(learned.plot_gate_spread, run))
    routes = learned.route_rows(plots.load_result(run)) if RunDir(run).result.is_file() else []
    if routes:
        header = ["task", "route (layer at depth 1..K)", "choice unchanged since step"]
        page.add(table(header, routes, "routes"))


def _method_settings(results: dict[str, Any], methods: list[str], page: _Page) -> None:
    """What each method ran with where it differs from the base config (its per-ordering
    section), as results.md says; the Config section below is that base."""
    base = results.get("config") or {}
    over = {m: results["methods"][m].get("overrides") or {} for m in methods}
    keys = sorted({k for o in over.values() for k in o})
    if not keys:
        return
    page.h2("Settings per method")
    page.add("<p>Each method ran with the config below except for these keys (its <code>orderings:</code> "
             "section).</p>\n")
    page.add(table(["key", "base config", *methods],
                   [[k, _setting(base.get(k)), *(_setting(over[m].get(k, base.get(k))) for m in methods)]
                    for k in keys], "settings"))
    page.config_note = "the base; each method's own keys are under Settings per method"


def _setting(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _sweep_report(sdir: Path, page: _Page) -> Any:
    table_ = plots.sweep_table(sdir)
    Ts = sorted({t for pts in table_.values() for t, _, _ in pts})
    page.h2("Mean test error % vs number of tasks")
    cells = {(m, t): fmt_pm(mean, ci, 100) for m, pts in table_.items() for t, mean, ci in pts}
    page.add(table(["method", *(f"T={t}" for t in Ts)],
                   [[m, *(cells.get((m, t), "") for t in Ts)] for m in table_], "results"))
    page.plot("sweep.png", "mean test error vs number of tasks (bars: 95% CI over trials)",
              lambda out: plots.plot_sweep(sdir, out))
    points = plots.sweep_points(sdir)
    T, cdir = points[-1]
    results = plots.load_compare(cdir)
    names = results.get("task_names") or []
    methods = list(results["methods"])
    if names:
        page.h2(f"Per task at T={T}: mean test error %")
        page.add(table(["task", *methods],
                       [[n, *(_pct(results["methods"][m]["per_task_error_mean"][t]) for m in methods)]
                        for t, n in enumerate(names)], "per-task"))
    return plots.load_compare(points[0][1]).get("config")


def _transfer_report(tdir: Path, page: _Page) -> Any:
    summary = plots.load_compare(tdir)
    page.h2(f"Transfer: {summary['num_sources']} source runs per ordering × {summary['num_seeds']} "
            "adaptation seeds")
    page.add(f"<p>{_e(TRANSFER_NOTE)}</p>\n")
    (h1, errors), (h2, tests) = transfer_tables(summary)
    page.add(table([h.replace("`", "") for h in h1], [[r[0].replace("`", ""), *r[1:]] for r in errors],
                   "results"))
    page.h2("Paired tests")
    page.add(table(h2, tests, "comparisons"))
    page.h2("Source runs")
    src = summary.get("sources") or {}
    page.add(table(["ordering", "mean test error % on their own tasks"],
                   [[o, _pct(e)] for o, e in src.items()], "results"))
    if (tdir / "sources" / RESULTS_JSON).is_file():
        page.add(f"<p>Their comparison: <code>softorder report {_e(tdir / 'sources')}</code></p>\n")
    return {"settings": summary.get("settings"), "new_task_names": summary.get("new_task_names")}


def _adapt_report(adir: Path, page: _Page) -> Any:
    if (adir / "adapt_summary.json").is_file():
        s = plots.read_json(adir / "adapt_summary.json", "not an adapt folder")
        table_ = s.get("mean_test_error") or {}
    else:  # one shots-K folder: adapt_results.json alone
        s = plots.read_json(adir / "adapt_results.json", "not an adapt folder")
        table_ = {str(s.get("shots") or "all"): {r["mode"]: r["mean_test_error"] for r in s["results"]}}
    modes = list(dict.fromkeys(m for row in table_.values() for m in row))
    page.h2(f"Adaptation of {s.get('source', '')} to new tasks: mean test error %")
    page.add(table(["shots", *modes], [[k, *(_pct(row.get(m)) for m in modes)] for k, row in table_.items()],
                   "results"))
    page.add(f"<p>New tasks: {_e(', '.join(s.get('tasks') or []))}. Each mode's run is a run folder "
             f"(<code>softorder report {_e(adir)}/&lt;mode&gt;</code>).</p>\n")
    return {k: s.get(k) for k in ("source", "source_sha256", "benchmark", "seed")}


def write_report(directory: str | Path) -> Path:
    """Write ``DIR/report/index.html`` (and its PNGs) for a run, compare or sweep directory and
    return the path of index.html."""
    src = Path(directory)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a directory; pass a run, compare, transfer, adapt or sweep "
                                "directory")
    kind = detect_kind(src)
    out_dir = src / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page(out_dir, f"softorder {kind} report: {src.resolve().name}")
    build = {"run": _run_report, "compare": _compare_report, "transfer": _transfer_report,
             "adapt": _adapt_report, "sweep": _sweep_report}[kind]
    config = build(src, page)
    index = out_dir / "index.html"
    index.write_text(page.render(src.resolve(), config), encoding="utf-8")
    return index
