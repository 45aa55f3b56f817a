"""``softorder transfer``: several source runs x adaptation seeds, paired, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softorder.cli import main

FAST = ["--set", "steps=30", "--set", "eval_every=10", "--set", "checkpoint_every=10", "--set", "tasks=3",
        "--set", "width=16", "--adapt-set", "steps=20", "--adapt-set", "eval_every=10"]


def _transfer(out: Path) -> list[str]:
    return ["transfer", "synthetic", "--sources", "2", "--seeds", "2", "--shots", "1,all", "--new-tasks",
            "2", "--workers", "1", "--out", str(out), *FAST]


def test_transfer_pairs_sources_and_seeds_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "transfer"
    assert main(_transfer(out)) == 0
    assert "0 of 10 adaptations done; 10 to run" in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    assert set(r["shots"]) == {"1", "all"} and r["num_sources"] == 2 and r["num_seeds"] == 2
    for label in ("1", "all"):
        errors, tests = r["shots"][label]["errors"], r["shots"][label]["tests"]
        assert {m: len(v) for m, v in errors.items()} == {"soft": 4, "parallel": 4, "scratch": 2}
        assert all(0.0 <= e <= 1.0 for v in errors.values() for e in v)
        assert tests["soft vs parallel (units)"]["n"] == 4 and tests["soft vs scratch (seeds)"]["n"] == 2
    # the units are what their folders say: soft source 1, seed 0, one drawing per class
    unit = json.loads((out / "adapt" / "soft-source1-seed0" / "adapt_summary.json").read_text())
    assert unit["seed"] == 0 and unit["source"].endswith("soft/trial1")
    assert r["shots"]["1"]["errors"]["soft"][1] == unit["mean_test_error"]["1"]["soft"]
    assert "frozen soft-trained layers" in (out / "results.md").read_text()

    # again: nothing is redone
    assert main(_transfer(out)) == 0
    assert "10 of 10 adaptations done; 0 to run" in capsys.readouterr().out
    # a source trained again on other weights: its adaptations are redone (scratch uses no weights)
    best = out / "sources" / "runs" / "parallel" / "trial0" / "best.pt"
    state = torch.load(best, weights_only=True)
    torch.save({k: v + 1 if k.startswith("core.bank.") else v for k, v in state.items()}, best)
    assert main(_transfer(out)) == 0
    assert "8 of 10 adaptations done; 2 to run" in capsys.readouterr().out
    # a source holding only its small files (a fresh clone) is trained again
    best.unlink()
    assert main(_transfer(out)) == 0
    assert "parallel/trial0 has no best.pt; training it again" in capsys.readouterr().out
    assert best.is_file()
