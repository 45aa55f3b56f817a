"""`softorder report DIR`: the HTML report of run, compare and sweep dirs."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest

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
