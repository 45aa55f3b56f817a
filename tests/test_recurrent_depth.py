"""scripts/recurrent_depth.py: K = 2L runs of soft and cycled parallel ordering, and the table
that pairs them with the K = L comparison."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from softorder.benchmarks import benchmark_config
from softorder.experiments.compare import compare

ROOT = Path(__file__).resolve().parents[1]
FAST = ["steps=20", "eval_every=10", "checkpoint_every=10"]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recurrent_depth", ROOT / "scripts" / "recurrent_depth.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_more_depths_than_layers_and_pairs_them_with_k_equals_l(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rd = _script()
    cfg, per = benchmark_config("synthetic", overrides=FAST)
    compare(cfg, tmp_path / "base", ["parallel", "soft"], 2, per_ordering=per, progress=False)
    monkeypatch.setattr(rd, "OUT", tmp_path / "rd")
    monkeypatch.setattr(rd, "BASE", {"synthetic": tmp_path / "base"})
    rd.run("synthetic", 2, FAST, (1, 2))
    K = 2 * cfg.model.num_layers
    trial = tmp_path / "rd" / "synthetic" / f"K{K}" / "runs" / "parallel" / "trial1"
    run = json.loads((trial / "result.json").read_text())
    assert run["seed"] == 1 and run["steps"] == 20 and f"depth: {K}" in (trial / "config.yaml").read_text()
    rows = rd.table()["rows"]
    got = [(r["ordering"], r["depth"]) for r in rows]
    assert got == [("parallel", 4), ("parallel", 8), ("soft", 4), ("soft", 8)]
    assert rows[0]["vs_K_equals_L"] is None and rows[1]["vs_K_equals_L"]["n"] == 2
    assert "| synthetic | soft | 8 (2L) | 2 |" in (tmp_path / "rd" / "results.md").read_text()
