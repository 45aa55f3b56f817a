"""Smoke test of the whole Omniglot pipeline on the real data (skips without ../shared): the
quick configuration, shrunk further for CI, must learn for every ordering, soft included — error
far below chance and a healthy run (issue 11) — not who wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from softorder.benchmarks import benchmark_config, train
from softorder.nn.orderings import PAPER_ORDERINGS

# Not routed: in this 300-step budget its routes are still being redrawn and it stays at chance
# (91-97% error with s_lr 0.1, 1e-3 or unit-RMS depth inputs; docs/results.md, "Beyond one S per task").


@pytest.mark.parametrize("ordering", [*PAPER_ORDERINGS, "gated"])
def test_omniglot_quick_learns(shared_data: Path, tmp_path: Path, ordering: str) -> None:
    cfg, per = benchmark_config(
        "omniglot",
        quick=True,
        overrides=[f"data_dir={shared_data}", "tasks=3", "steps=300", f"ordering={ordering}"],
    )
    r = train(cfg.replace(**per.get(ordering, {})), tmp_path / ordering, quiet=True)
    chance = 1 - 1 / 55  # these three alphabets have 26 to 55 characters: chance error >= 96%
    assert r["mean_test_error"] < 0.8 < chance, r["mean_test_error"]
    assert not r["health"]["unhealthy"], r["health"]
    assert (tmp_path / ordering / "result.json").exists()
