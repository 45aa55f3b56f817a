"""``softorder transfer``: several source runs x adaptation seeds, paired, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from softorder.cli import main

FAST = ["--set", "steps=30", "--set", "eval_every=10", "--set", "checkpoint_every=10", "--set", "tasks=3",
        "--set", "width=16", "--adapt-set", "steps=20", "--adapt-set", "eval_every=10"]


def _transfer(out: Path, *extra: str) -> list[str]:
    return ["transfer", "synthetic", "--sources", "2", "--seeds", "2", "--shots", "1,all", "--new-tasks",
            "2", "--workers", "1", "--out", str(out), *FAST, *extra]


def test_transfer_pairs_sources_and_seeds_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "transfer"
    assert main(_transfer(out)) == 0
    assert "0 of 10 adaptations done; 10 to run" in capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    assert set(r["shots"]) == {"1", "all"} and r["num_sources"] == 2 and r["num_seeds"] == 2
    assert r["settings"]["shots"] == ["1", "all"] and r["settings"]["new_tasks"] == 2
    for label in ("1", "all"):
        errors, tests = r["shots"][label]["errors"], r["shots"][label]["tests"]
        assert [len(row) for row in errors["soft"]] == [2, 2] and len(errors["scratch"]) == 2
        assert all(0.0 <= e <= 1.0 for m in ("soft", "parallel") for row in errors[m] for e in row)
        assert {t["n"] for t in tests.values()} == {2}  # sources or seeds, never the 4 dependent units
        soft = [sum(row) / 2 for row in errors["soft"]]  # the CI is over sources (means over seeds)
        assert r["shots"][label]["mean_ci95"]["soft"][0] == pytest.approx(sum(soft) / 2)
    # the units are what their folders say: soft source 1, seed 0, one drawing per class
    unit = json.loads((out / "adapt" / "soft-source1-seed0" / "adapt_summary.json").read_text())
    assert unit["seed"] == 0 and unit["source"].endswith("soft/trial1")
    assert r["shots"]["1"]["errors"]["soft"][1][0] == unit["mean_test_error"]["1"]["soft"]
    assert "frozen soft-trained layers" in (out / "results.md").read_text()

    # other weights for a source (its 2 units redo; scratch uses no weights) and a unit cut short
    best = out / "sources" / "runs" / "parallel" / "trial0" / "best.pt"
    state = torch.load(best, weights_only=True)
    torch.save({k: v + 1 if k.startswith("core.bank.") else v for k, v in state.items()}, best)
    (out / "adapt" / "scratch-seed1" / "transfer_unit.json").write_text('{"unit": ["scr')
    assert main(_transfer(out)) == 0
    assert "7 of 10 adaptations done; 3 to run" in capsys.readouterr().out
    # other adaptation settings redo every unit; a source with its small files alone trains again
    (out / "sources" / "runs" / "soft" / "trial1" / "best.pt").unlink()
    assert main(_transfer(out, "--adapt-set", "lr=0.002")) == 0
    said = capsys.readouterr().out
    assert "soft/trial1 has no best.pt; training it again" in said
    assert "0 of 10 adaptations done; 10 to run" in said
    assert (out / "sources" / "runs" / "soft" / "trial1" / "best.pt").is_file()
    # a unit that fails ends the run at once with its error (the units queued behind it do not
    # run: scratch comes last); the units finished before it stay done
    (out / "sources" / "runs" / "parallel" / "trial1" / "best.pt").write_bytes(b"not a checkpoint")
    assert main(_transfer(out, "--adapt-set", "lr=0.003")) == 2
    assert "parallel/trial1/best.pt is unreadable" in capsys.readouterr().err
    assert (out / "adapt" / "soft-source1-seed1" / "transfer_unit.json").is_file()
    assert not (out / "adapt" / "scratch-seed1").exists()


def test_transfer_refuses_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_transfer(tmp_path / "t", "--adapt-set", "seed=3")) == 2
    assert "--adapt-set seed: the adaptation seeds are" in capsys.readouterr().err
    assert main(_transfer(tmp_path / "t", "--adapt-set", "ordering=soft")) == 2
    assert "--set ordering: the mode and --new-tasks decide it" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
