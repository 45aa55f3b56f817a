"""Plots of run, compare and sweep dirs (paper Fig. 4, 6) and the strongest path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softorder.report import health as health_plots
from softorder.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def test_strongest_path_is_argmax_layer_per_depth() -> None:
    w = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.0, 0.1, 0.9], [0.3, 0.4, 0.3]])
    assert plots.strongest_path(w) == [1, 0, 2, 1]
    assert plots.strongest_path(w.tolist()) == [1, 0, 2, 1]
    with pytest.raises(ValueError, match="depth, layer"):
        plots.strongest_path(np.zeros((2, 3, 4)))


def test_s_plots_of_a_run(run_dir: Path, tmp_path: Path) -> None:
    assert _is_png(plots.plot_s_heatmaps(run_dir, tmp_path / "a" / "heat.png"))
    assert _is_png(plots.plot_s_trajectories(run_dir, tmp_path / "traj.png", tasks=(0, 2)))
    assert _is_png(plots.plot_run_curves(run_dir, tmp_path / "curves.png"))
    s, step = plots.s_at(run_dir)
    assert s.shape == (3, 4, 4) and step == 250  # the best step of the fake run
    assert plots.s_at(run_dir, which="last")[1] == 300
    np.testing.assert_allclose(s.sum(-1), 1.0, rtol=1e-6)


def test_s_plots_of_a_hard_run_say_why(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    run = fake_run(tmp_path / "hard", soft=False)
    assert not plots.has_s(run)
    with pytest.raises(ValueError, match="ordering=soft"):
        plots.plot_s_heatmaps(run, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        plots.load_metrics(tmp_path)


def test_compare_plots(compare_dir: Path, tmp_path: Path) -> None:
    assert _is_png(plots.plot_learning_curves(compare_dir, tmp_path / "lc.png"))
    assert _is_png(plots.plot_learning_curves(compare_dir, tmp_path / "lc_ci.png", band="ci"))
    assert _is_png(plots.plot_per_task(compare_dir, tmp_path / "bars.png"))
    assert plots.per_task_trials(compare_dir, "soft").shape == (2, 3)


def test_sweep_plot(sweep_dir: Path, tmp_path: Path) -> None:
    assert [t for t, _ in plots.sweep_points(sweep_dir)] == [2, 3]
    table = plots.sweep_table(sweep_dir)
    assert set(table) == {"soft", "parallel"} and [p[0] for p in table["soft"]] == [2, 3]
    assert _is_png(plots.plot_sweep(sweep_dir, tmp_path / "sweep.png"))
    with pytest.raises(FileNotFoundError, match="not a sweep directory"):
        plots.sweep_points(tmp_path / "empty")


def test_health_plot_of_real_runs(tmp_path: Path) -> None:
    from softorder.benchmarks import train
    from softorder.report.health import has_health, plot_health
    from softorder.train.config import Config

    cfg = Config(benchmark="synthetic", tasks=2, width=8, steps=20, eval_every=10, checkpoint_every=20)
    runs = {o: tmp_path / o for o in ("parallel", "soft")}
    for o, d in runs.items():
        train(cfg.replace(ordering=o), d, quiet=True)
    assert has_health(runs["soft"]) and not has_health(tmp_path)
    assert _is_png(plot_health(runs, tmp_path / "health.png", styles={"soft": "r-"}))


def test_plots_and_report_say_which_mixing_weights_they_show(run_dir: Path, tmp_path: Path) -> None:
    from softorder.report.html import write_report

    assert plots.mixing_label(run_dir) == "mixing weights (softmax(S))"
    cfg = run_dir / "config.yaml"
    cfg.write_text(cfg.read_text() + "soft_norm: l2\ntemperature: 0.5\n")
    label = "mixing weights (softmax(S/0.5)/‖·‖₂)"  # what MultiTaskNet.mixing_weights() logged as S
    assert plots.mixing_label(run_dir) == label
    original = cfg.read_text()
    cfg.write_text(original.replace("ordering: soft", "ordering: gated"))
    gated = "mixing weights (softmax(S/0.5)/‖·‖₂, the gate's input-independent part)"
    assert plots.mixing_label(run_dir) == gated
    cfg.write_text(original.replace("ordering: soft", "ordering: routed"))
    assert plots.mixing_label(run_dir) == "routing probabilities (softmax(S/τ), τ annealed)"
    cfg.write_text(original.replace("ordering: soft", "ordering: parallel"))
    with pytest.raises(ValueError, match="parallel ordering logs no mixing weights"):
        plots.mixing_label(run_dir)
    cfg.write_text(original)
    text = write_report(run_dir).read_text()
    assert f"{label} per task at the best step" in text and "softmax(S) per task" not in text
    import matplotlib.pyplot as plt

    seen: list[str] = []
    real = plots.save_figure

    def spy(fig: plt.Figure, out: Path) -> Path:
        seen.extend([fig.get_supylabel(), *(ax.yaxis.label.get_text() for ax in fig.axes)])
        return real(fig, out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save_figure", spy)
        plots.plot_s_heatmaps(run_dir, tmp_path / "h.png")
        plots.plot_s_trajectories(run_dir, tmp_path / "t.png")
    assert label in seen and "softmax(S)" not in seen  # the colour bar and the trajectories' axis


def _figures(draw: Callable[[], object]) -> list[Any]:
    """The matplotlib figures ``draw`` saves (looked at before they close)."""
    import matplotlib.pyplot as plt

    seen: list[Any] = []
    real = plots.save_figure

    def keep(fig: plt.Figure, out: Path) -> Path:
        fig.canvas.draw()  # tick labels exist once drawn
        seen.append(fig)
        return real(fig, out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save_figure", keep)
        mp.setattr(health_plots, "save_figure", keep)
        draw()
    return seen


def test_plots_agree_with_each_other_and_the_tables(tmp_path: Path, fake_run: Callable[..., Path],
                                                    compare_dir: Path) -> None:
    from softorder.report.html import write_report

    run = fake_run(tmp_path / "run", level=0.0)  # every error 0 (clipped): the axis stays at 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for r in lines:
        r.update(val_error=[0.0] * 3, mean_val_error=0.0,
                 health={"rms": [0.4, 0.6, 0.9, 1.2], "dead": [0.0] * 4})
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (curves,) = _figures(lambda: plots.plot_run_curves(run, tmp_path / "c.png"))
    assert curves.axes[0].get_ylim()[0] == 0.0 and curves.axes[0].get_ylabel() == "validation error %"
    (bars,) = _figures(lambda: plots.plot_per_task(compare_dir, tmp_path / "p.png"))
    assert bars.axes[0].get_ylabel() == "test error %" and bars.axes[0].get_ylim()[0] == 0.0
    # depths and layers are numbered from 1 in every plot (F_1..F_L, as the paper and health do)
    heat, traj = _figures(lambda: (plots.plot_s_heatmaps(run, tmp_path / "h.png"),
                                   plots.plot_s_trajectories(run, tmp_path / "t.png")))
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == ["1", "2", "3", "4"]
    assert traj.axes[0].get_title().endswith("depth 1")
    (health,) = _figures(lambda: health_plots.plot_health({"r": run}, tmp_path / "health.png"))
    assert health.axes[0].get_title() == "depth 1"
    # log-scale tick labels: plain numbers, at the left panel only (none run into a neighbour)
    rms = health.axes[:4]
    shown = [[t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()] for ax in rms]
    assert shown[0] and all(not s for s in shown[1:]), shown
    assert all("times" not in t and "^" not in t for t in shown[0]), shown[0]
    # the run report's tables show error rates in %, as the compare report's do
    text = write_report(run).read_text()
    assert "<td>mean_test_error %</td><td>" in text and "<th>test_error %</th>" in text


def test_trials_summary_says_how_gates_vary_and_where_routers_settled(tmp_path: Path) -> None:
    from softorder.report.learned import trials_summary

    def run(name: str, **result: object) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "result.json").write_text(json.dumps(result))
        return d

    std = [[[0.0, 0.1], [0.2, 0.3]]]  # [T=1, K=2, L=2]: mean 0.15, largest 0.3
    gated = [run("g0", gate_weights_std=std), run("g1", gate_weights_std=[[[0.0, 0.0], [0.0, 0.5]]])]
    assert trials_summary(gated) == [
        ("trials", "2"),
        ("std of a mixing weight over a task's test inputs, mean", "0.125–0.150"),
        ("std of a mixing weight over a task's test inputs, largest", "0.30–0.50"),
    ]
    routes = [[0, 1], [1, 0], [1, 0], [1, 1]]  # 3 distinct; 3 use no layer twice
    routed = [run("r0", route_choice=routes, route_settled_step=[10, 20, 30, 40]), tmp_path / "unfinished"]
    assert dict(trials_summary(routed)) == {
        "trials": "1",
        "distinct routes among the 4 tasks": "3",
        "routes that use no layer twice (with K = L: permutations)": "3",
        "median step from which a task's route stopped changing": "25",
    }
    assert trials_summary([run("soft", mean_test_error=0.2)]) == []
