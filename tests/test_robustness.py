"""scripts/robustness.py: the grid's jobs, its table and the recipe chosen on validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from softorder.benchmarks import benchmark_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "robustness.py"


Cell = tuple[str, float]  # (variant, lr)


def _fake_runs(root: Path, errors: dict[Cell, list[float]], dead: set[Cell]) -> None:
    for (variant, lr), vals in errors.items():
        for k, v in enumerate(vals):
            d = root / "results" / "robustness" / "omniglot-105" / f"lr={lr:g}" / variant / f"seed{100 + k}"
            d.mkdir(parents=True)
            health = {"dead_last_depth": (variant, lr) in dead and k == 0, "at_chance": False}
            d.joinpath("result.json").write_text(json.dumps({
                "seed": 100 + k, "mean_val_error": v, "mean_test_error": v, "health": health}))
            peak = 0.9 if variant == "l2" else 0.1  # the last depth's dead fraction, mid-run
            d.joinpath("metrics.jsonl").write_text("".join(
                json.dumps({"step": step, "health": {"dead": [0.0, dead]}}) + "\n"
                for step, dead in ((25, 0.0), (50, peak), (75, 0.0))))


def test_table_counts_dead_runs_and_choose_picks_the_lowest_validation_error(tmp_path: Path) -> None:
    errors = {("rms", 3e-3): [0.30, 0.32, 0.31], ("l2", 3e-3): [0.9, 0.5, 0.6],
              ("rms", 1e-2): [0.35] * 3 + [0.0],  # its 4th seed is not compared: the others lack it
              ("parallel", 3e-3): [0.33] * 3, ("parallel", 1e-3): [0.31] * 3,
              ("plain", 1e-3): [0.2, 0.2]}  # the lowest, but too few runs to be chosen
    _fake_runs(tmp_path, errors, dead={("l2", 3e-3)})
    run = [sys.executable, str(SCRIPT)]
    doc = tmp_path / "results.md"
    header = ("| scale | lr | variant | runs | dead last depth | at chance | last depth dead, peak % | "
              "val error % | test error % |")
    doc.write_text(f"before\n\n{header}\n|---|\n| an old row |\n\nafter\n")
    subprocess.run([*run, "table", "--docs", str(doc)], cwd=tmp_path, check=True, capture_output=True,
                   text=True)
    text = doc.read_text()
    assert text.startswith("before\n\n| scale") and text.endswith("|\n\nafter\n") and "old row" not in text
    assert text.count("| omniglot-105 |") == 6
    rows = json.loads((tmp_path / "results" / "robustness" / "results.json").read_text())
    l2 = next(r for r in rows if r["variant"] == "l2")
    assert (l2["runs"], l2["dead"], l2["at_chance"]) == (3, 1, 0)
    assert l2["peak_dead_last_depth"] == pytest.approx(0.9)
    assert [r["lr"] for r in rows if r["variant"] == "rms"] == [3e-3, 1e-2]  # sorted by lr
    out = tmp_path / "chosen-105.yaml"
    subprocess.run([*run, "choose", "--out", str(out)], cwd=tmp_path, check=True, capture_output=True,
                   text=True)
    chosen = yaml.safe_load(out.read_text())
    assert chosen["orderings"]["soft"] == {"soft_norm": "none", "depth_norm": "rms", "lr": 3e-3}
    assert chosen["orderings"]["parallel"] == {"lr": 1e-3} == chosen["orderings"]["single"]
    assert (chosen["image_size"], chosen["padding"], chosen["channels"]) == (105, 0, 53)
    cfg, per = benchmark_config("omniglot", path=out)  # what compare --config reads
    assert cfg.data.tasks == 50 and cfg.optim.steps == 3000  # omniglot.yaml's, not the grid's 5 and 200
    assert cfg.replace(**per["soft"]).model.depth_norm == "rms"


def test_jobs_are_seed_major_and_each_variant_sets_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import robustness

    jobs = robustness.jobs(["omniglot-105"], ["rms", "parallel"], "/data")
    assert len(jobs) == 5 * 3 * 2
    first = [(c["seed"], c["lr"], c["ordering"], c["depth_norm"]) for c, _ in jobs[:3]]
    assert first == [(100, 3e-3, "soft", "rms"), (100, 3e-3, "parallel", "none"), (100, 1e-2, "soft", "rms")]
    cfg, out = jobs[0]
    assert (cfg["image_size"], cfg["tasks"], cfg["steps"], cfg["data_dir"]) == (105, 5, 200, "/data")
    assert out == Path("results/robustness/omniglot-105/lr=0.003/rms/seed100")
