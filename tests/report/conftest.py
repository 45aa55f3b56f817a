"""Fake run / compare / sweep directories in the format the training runner writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

TASKS = ["0-vs-1", "2-vs<3>", "4 & 5"]  # names with characters HTML must escape


def make_run(path: Path, soft: bool = True, seed: int = 0, num_tasks: int = 3, depth: int = 4,
             layers: int = 4, evals: int = 6, level: float = 0.2) -> Path:
    """A finished run: config.yaml, metrics.jsonl with S drifting towards a hard order, result.json."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    names = (TASKS * num_tasks)[:num_tasks]
    ordering = "soft" if soft else "parallel"
    path.joinpath("config.yaml").write_text(
        yaml.safe_dump({"benchmark": "mnist", "ordering": ordering, "seed": seed, "steps": 50 * evals})
    )
    target = np.stack([np.eye(layers)[rng.permutation(layers)[:depth] % layers] for _ in range(num_tasks)])
    lines = []
    for i in range(evals):
        err = np.clip(level + 0.3 / (i + 1) + rng.normal(0, 0.02, num_tasks), 0, 1)
        logits = 4.0 * i / evals * target + rng.normal(0, 0.1, target.shape)
        s = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        lines.append(json.dumps({
            "step": 50 * (i + 1), "time": 0.5 * i, "train_loss": list(err + 0.1), "val_loss": list(err + 0.2),
            "val_error": list(err), "mean_val_loss": float(err.mean() + 0.2),
            "mean_val_error": float(err.mean()), "S": s.tolist() if soft else None,
        }))
    path.joinpath("metrics.jsonl").write_text("\n".join(lines) + "\n")
    test_err = list(np.clip(level + rng.normal(0, 0.03, num_tasks), 0, 1))
    path.joinpath("result.json").write_text(json.dumps({
        "benchmark": "mnist", "ordering": ordering, "seed": seed, "task_names": names,
        "best_step": 50 * (evals - 1), "steps": 50 * evals, "test_loss": [e + 0.2 for e in test_err],
        "test_error": test_err, "mean_test_loss": float(np.mean(test_err)) + 0.2,
        "mean_test_error": float(np.mean(test_err)), "val_loss": [0.3] * num_tasks,
        "val_error": [0.2] * num_tasks, "mean_val_loss": 0.3, "mean_val_error": 0.2, "train_time_s": 1.5,
    }))
    return path


def make_compare(path: Path, trials: int = 2, num_tasks: int = 3) -> Path:
    """A compare dir with methods soft and parallel, each with its run dirs."""
    methods = {}
    for level, (method, soft) in zip((0.1, 0.2), (("soft", True), ("parallel", False))):
        runs, errs = [], []
        for k in range(trials):
            rel = f"runs/{method}/trial{k}"
            make_run(path / rel, soft=soft, seed=k, num_tasks=num_tasks, level=level)
            runs.append(rel)
            errs.append(json.loads((path / rel / "result.json").read_text())["test_error"])
        e = np.asarray(errs)
        methods[method] = {
            "test_error_mean": float(e.mean()), "test_error_ci95": 0.01,
            "test_loss_mean": float(e.mean()) + 0.2, "test_loss_ci95": 0.02,
            "trials": list(e.mean(1)), "trial_losses": list(e.mean(1) + 0.2),
            "per_task_error_mean": list(e.mean(0)), "runs": runs,
        }
    results = {
        "benchmark": "mnist", "task_names": (TASKS * num_tasks)[:num_tasks],
        "config": {"benchmark": "mnist", "steps": 300, "note": "<b>not bold</b>"},
        "methods": methods,
        "comparisons": [{"a": "soft", "b": "parallel", "metric": "test_error", "mean_diff": -0.1,
                         "p_value": 0.01, "test": "paired t"}],
    }
    path.joinpath("results.json").write_text(json.dumps(results))
    path.joinpath("results.md").write_text("| method | error |\n")
    return path


def make_sweep(path: Path, counts: tuple[int, ...] = (2, 3)) -> Path:
    for t in counts:
        make_compare(path / f"T{t}", trials=2, num_tasks=t)
    return path


@pytest.fixture
def fake_run() -> Callable[..., Path]:
    """:func:`make_run` itself, for tests that need a run of their own."""
    return make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


@pytest.fixture
def compare_dir(tmp_path: Path) -> Path:
    return make_compare(tmp_path / "cmp")


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "sweep")
