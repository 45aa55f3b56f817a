"""`softorder report DIR`: the HTML report of run, compare and sweep dirs."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from softorder.report import cli
from softorder.report.html import detect_kind, write_report


def _imgs_exist(index: Path) -> list[str]:
    srcs = re.findall(r'<img src="([^"]+)"', index.read_text())
    assert srcs and all((index.parent / s).stat().st_size > 1000 for s in srcs)
    return srcs


def test_run_report(run_dir: Path) -> None:
    index = write_report(run_dir)
    assert index == run_dir / "report" / "index.html"
    text = index.read_text()
    assert 'class="results"' in text and 'class="per-task"' in text
    assert "2-vs&lt;3&gt;" in text and "4 &amp; 5" in text and "2-vs<3>" not in text
    assert "mean_test_error" in text and "torch" in text and "ordering: soft" in text
    assert set(_imgs_exist(index)) == {"curves.png", "s_heatmaps.png", "s_trajectories.png"}


def test_compare_report(compare_dir: Path) -> None:
    text = write_report(compare_dir).read_text()
    assert "test error % (mean ± 95% CI)" in text and "paired t" in text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in text  # the config, escaped
    srcs = _imgs_exist(compare_dir / "report" / "index.html")
    assert {"per_task.png", "learning_curves.png", "s_heatmaps_soft.png"} <= set(srcs)
    assert "s_heatmaps_parallel.png" not in srcs  # hard orderings have no S


def test_sweep_report(sweep_dir: Path) -> None:
    text = write_report(sweep_dir).read_text()
    assert "T=2" in text and "T=3" in text and "sweep.png" in text
    assert detect_kind(sweep_dir) == "sweep"


def test_hard_run_report_has_no_s_plots(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    run = fake_run(tmp_path / "hard", soft=False)
    text = write_report(run).read_text()
    assert "curves.png" in text and "s_heatmaps" not in text and "ordering: parallel" in text


def test_not_a_results_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a results directory"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        write_report(tmp_path / "missing")


def test_report_command(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="softorder")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(sweep_dir)])
    assert args.func(args) == 0
    assert "index.html" in capsys.readouterr().out
    assert (sweep_dir / "report" / "sweep.png").is_file()


def _transfer_dir(path: Path) -> Path:
    """What ``softorder transfer`` writes: results.json (2 sources x 2 seeds, shots 1 and all)."""
    from softorder.experiments.transfer import summarise

    units = [(m, i, s) for m in ("soft", "parallel") for i in range(2) for s in range(2)]
    units += [("scratch", None, s) for s in range(2)]
    done = {u: {"mean_test_error": {k: {u[0]: 0.1 + 0.01 * n + (k == "1") * 0.2} for k in ("1", "all")}}
            for n, u in enumerate(units)}
    summary = summarise(done, 2, 2, ["1", "all"])
    summary.update(settings={"shots": ["1", "all"], "new_tasks": 2}, sources={"soft": 0.3, "parallel": 0.32},
                   new_task_names=["a", "b"])
    path.mkdir()
    (path / "results.json").write_text(json.dumps(summary))
    return path


def test_transfer_adapt_and_other_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tdir = _transfer_dir(tmp_path / "transfer")
    assert cli.run(argparse.Namespace(dir=str(tdir))) == 0
    text = (tdir / "report" / "index.html").read_text()
    assert "shots all" in text and "soft vs parallel (over sources)" in text and "(soft)" in text
    assert "new_tasks: 2" in text
    adapt = tmp_path / "adapt"
    adapt.mkdir()
    (adapt / "adapt_summary.json").write_text(json.dumps(
        {"source": "runs/x", "tasks": ["a"], "mean_test_error": {"1": {"soft": 0.25, "scratch": 0.5}}}))
    text = write_report(adapt).read_text()
    assert "<td>25.00</td>" in text and "<td>50.00</td>" in text
    # a folder of softorder's without a report, or a results.json of another kind: one line naming it
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "planted.json").write_text("{}")
    with pytest.raises(ValueError, match="output of `softorder experiment planted`"):
        write_report(planted)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="neither a `softorder compare` nor"):
        write_report(tmp_path / "odd")


def test_compare_report_shows_what_each_method_ran_with(compare_dir: Path) -> None:
    results = json.loads((compare_dir / "results.json").read_text())
    results["config"].update(soft_norm="none", dropout=0.2)
    results["methods"]["soft"]["overrides"] = {"soft_norm": "l2", "dropout": 0.0}
    results["methods"]["parallel"]["overrides"] = {}
    (compare_dir / "results.json").write_text(json.dumps(results))
    text = write_report(compare_dir).read_text()
    rows = re.findall(r"<tr>((?:<td>[^<]*</td>)+)</tr>", text.split("Settings per method")[1])
    cells = [re.findall(r"<td>([^<]*)</td>", r) for r in rows[:2]]
    assert cells == [["dropout", "0.2", "0.0", "0.2"], ["soft_norm", "none", "l2", "none"]]  # soft, parallel
    assert "<h2>Config (the base; each method&#x27;s own keys are under Settings per method)</h2>" in text


def test_the_config_leaves_out_keys_the_net_does_not_read(tmp_path: Path,
                                                          fake_run: Callable[..., Path]) -> None:
    """An image run's conv core reads neither ``width`` nor the transformer's ``tokens``/``heads``;
    a hard ordering reads none of S's settings (issue 23, item 17)."""
    import softorder.benchmarks  # noqa: F401  (registers the benchmarks' config sections)
    from softorder.train.config import Config, unused_keys

    image = Config(benchmark="imagefolder", ordering="parallel").to_dict()
    assert set(unused_keys(image)) == {"tokens", "heads", "width", "encoder", "temperature", "soft_norm",
                                       "s_lr", "gate_hidden", "route_tau_start", "route_tau_end",
                                       "route_anneal"}
    routed = Config(benchmark="uci", ordering="routed").to_dict()
    assert set(unused_keys(routed)) == {"tokens", "heads", "temperature", "soft_norm", "gate_hidden"}
    transformer = Config(benchmark="uci", core="transformer", width=8, tokens=2, heads=2).to_dict()
    assert unused_keys(transformer) == ["gate_hidden", "route_tau_start", "route_tau_end", "route_anneal"]
    run = fake_run(tmp_path / "img", soft=False)
    (run / "config.yaml").write_text(yaml.safe_dump(image))
    text = write_report(run).read_text()
    config = text.split("<h2>Config")[1]
    assert "channels: " in config and "tokens:" not in config and "width:" not in config
    assert "# not read by this net, left out: tokens, heads, width, encoder" in config


def test_gated_and_routed_runs_show_the_gate_spread_and_the_routes(tmp_path: Path,
                                                                   fake_run: Callable[..., Path]) -> None:
    gated = fake_run(tmp_path / "gated")
    res = json.loads((gated / "result.json").read_text())
    mean = [[[0.25] * 4 for _ in range(4)] for _ in range(3)]
    std = [[[0.1 * (t + k) / 6 for _ in range(4)] for k in range(4)] for t in range(3)]
    res.update(gate_weights_mean=mean, gate_weights_std=std, gate_rows=[10, 10, 10])
    (gated / "result.json").write_text(json.dumps(res))
    index = write_report(gated)
    assert "gate_spread.png" in _imgs_exist(index)
    routed = fake_run(tmp_path / "routed")
    res = json.loads((routed / "result.json").read_text())
    res.update(route_choice=[[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1]], route_settled_step=[40, 250, 0])
    (routed / "result.json").write_text(json.dumps(res))
    text = write_report(routed).read_text()
    assert 'class="routes"' in text and "F4 → F3 → F2 → F1" in text and ">250<" in text
    assert "gate_spread" not in text


def test_compare_report_summarises_the_routes_over_trials(compare_dir: Path) -> None:
    for k, routes in enumerate(([[0, 1], [1, 0], [1, 1]], [[0, 1], [0, 1], [0, 1]])):
        path = compare_dir / f"runs/soft/trial{k}/result.json"
        res = json.loads(path.read_text())
        res.update(route_choice=routes, route_settled_step=[5, 15, 25])
        path.write_text(json.dumps(res))
    text = write_report(compare_dir).read_text()
    assert 'class="learned-trials"' in text and "distinct routes among the 3 tasks</td><td>1–3<" in text
