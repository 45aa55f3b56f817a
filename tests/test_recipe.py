"""scripts/recipe.py: validation-only tuning picks per method, each method on its YAML baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_recipe_tunes_each_method_and_skips_settings_that_change_nothing(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "recipe.py"), "synthetic", "--trials", "1",
         "--out", str(out),
         "--set", "steps=10", "--set", "eval_every=5", "--set", "checkpoint_every=5", "--set", "lr=0.01",
         "--workers", "1", "--orderings", "parallel,soft",
         "--grid", "base:{}", "lr=3e-3:{lr: 0.003}", "s_lr=0.1:{s_lr: 0.1}",
         "same:{lr: 0.01}"],  # the baseline again: runs for nobody
        check=True, capture_output=True, text=True,
    )
    rows = json.loads((out / "recipe.json").read_text())["rows"]
    assert sorted((r["ordering"], r["setting"]) for r in rows) == [
        ("parallel", "base"), ("parallel", "lr=3e-3"),
        ("soft", "base"), ("soft", "lr=3e-3"), ("soft", "s_lr=0.1"),
    ]
    assert not (out / "same").exists()
    run = yaml.safe_load((out / "lr=3e-3" / "runs" / "soft" / "trial0" / "config.yaml").read_text())
    assert run["lr"] == 0.003  # the grid item wins over --set
    chosen = yaml.safe_load((out / "chosen.yaml").read_text())
    assert chosen["steps"] == 10 and set(chosen["orderings"]) == {"parallel", "soft"}


def test_methods_not_tuned_keep_their_shipped_settings() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("recipe", ROOT / "scripts" / "recipe.py")
    assert spec and spec.loader
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    shipped = {"soft": {"dropout": 0.0, "depth_norm": "rms"}, "parallel": {"dropout": 0.2}}
    settings = {"base": {}, "wide": {"gate_hidden": 16}}
    got = recipe.chosen_orderings(shipped, settings, {"gated": "wide", "parallel": "base"})
    assert got == {"soft": {"dropout": 0.0, "depth_norm": "rms"}, "parallel": {"dropout": 0.2},
                   "gated": {"gate_hidden": 16}}
