from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from softorder.benchmarks import benchmark_config
from softorder.cli import main
from softorder.experiments.compare import compare


def test_compare_writes_machine_readable_results(tmp_path: Path) -> None:
    cfg, _ = benchmark_config("synthetic", overrides=["steps=40", "eval_every=20", "checkpoint_every=20"])
    s = compare(cfg, tmp_path, trials=2, workers=1, progress=False, per_ordering={"soft": {"s_lr": 0.05}})
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["benchmark"] == "synthetic" and len(data["task_names"]) == 4
    assert data["config"]["steps"] == 40
    for o in ("single", "parallel", "permuted", "soft"):
        m = data["methods"][o]
        for key in ("test_error_mean", "test_error_ci95", "test_loss_mean", "trials"):
            assert key in m
        assert len(m["trials"]) == 2
        assert m["test_error_mean"] == pytest.approx(sum(m["trials"]) / 2)
        assert (tmp_path / m["runs"][1] / "result.json").exists()
    assert data["methods"]["soft"]["overrides"] == {"s_lr": 0.05}
    comps = {(c["b"], c["metric"]) for c in data["comparisons"]}
    assert ("parallel", "test_error") in comps and ("single", "test_loss") in comps
    assert all(0 <= c["p_value"] <= 1 for c in data["comparisons"] if c["p_value"] is not None)
    md = (tmp_path / "results.md").read_text()
    assert "| soft vs parallel | test_error |" in md and "| synthetic0 |" in md
    # Trials of the same seed share data; permuted orders are drawn anew per trial.
    import torch

    o0 = torch.load(tmp_path / "runs/permuted/trial0/best.pt", weights_only=True)["core.order"]
    o1 = torch.load(tmp_path / "runs/permuted/trial1/best.pt", weights_only=True)["core.order"]
    assert not torch.equal(o0, o1)
    assert s["wall_time_s"] > 0 and s["trials_reused"] == 0
    # A finished compare is reused, not redone: re-reading it rewrites the same results.json.
    before = (tmp_path / "results.json").read_bytes()
    again = compare(cfg, tmp_path, trials=2, workers=1, progress=False, per_ordering={"soft": {"s_lr": 0.05}})
    assert again["methods"]["soft"]["trials"] == s["methods"]["soft"]["trials"]
    assert (tmp_path / "results.json").read_bytes() == before
    # A resumed one counts what it read back; its wall time is its own.
    shutil.rmtree(tmp_path / "runs/single/trial1")
    resumed = compare(cfg, tmp_path, trials=2, workers=1, progress=False,
                      per_ordering={"soft": {"s_lr": 0.05}})
    assert resumed["trials_reused"] == 2 * 4 - 1
    # ... wherever its data directory is now (a location, not a setting); other settings are refused
    moved = compare(cfg.replace(data_dir=str(tmp_path / "elsewhere")), tmp_path, trials=2, workers=1,
                    progress=False, per_ordering={"soft": {"s_lr": 0.05}})
    assert moved["methods"]["parallel"]["trials"] == s["methods"]["parallel"]["trials"]
    with pytest.raises(FileExistsError, match=r"trial0 holds a run with a different config \(lr\)"):
        compare(cfg.replace(lr=0.5), tmp_path, trials=2, workers=1, progress=False,
                per_ordering={"soft": {"s_lr": 0.05}})


def test_cli_compare_in_parallel_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "compare",
        "synthetic",
        "--orderings",
        "parallel,soft",
        "--trials",
        "2",
        "--workers",
        "2",
        "--set",
        "steps=30",
        "--set",
        "eval_every=10",
        "--set",
        "checkpoint_every=30",
        "--out",
        str(tmp_path),
    ]
    rc = main(argv)
    assert rc == 0
    out = capsys.readouterr().out
    assert "| soft |" in out and str(tmp_path) in out
    first = json.loads((tmp_path / "results.json").read_text())
    assert set(first["methods"]) == {"parallel", "soft"}
    # A rerun reuses every finished run, vectorised or not, instead of refusing it.
    assert main(argv) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["methods"]["soft"]["trials"] == first["methods"]["soft"]["trials"]


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "cifar"]) == 2
    assert "unknown benchmark 'cifar'" in capsys.readouterr().err
    assert main(["compare", "synthetic", "--orderings", "soft,hard", "--out", str(tmp_path)]) == 2
    assert "unknown ordering(s) ['hard']" in capsys.readouterr().err
    assert main(["train", "synthetic", "--set", "bogus=1", "--out", str(tmp_path / "r")]) == 2
    assert "unknown key(s) bogus" in capsys.readouterr().err
    assert main(["train", "uci", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert "softorder data download uci" in err


def test_cli_train_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", "synthetic", "--quick", "--set", "steps=40", "--out", str(out), "--quiet"]) == 0
    assert "mean test error" in capsys.readouterr().out
    assert main(["train", "--resume", str(out), "--set", "steps=60", "--quiet"]) == 0
    assert json.loads((out / "result.json").read_text())["steps"] == 60


def test_cli_set_overrides_per_ordering_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "benchmark: synthetic\ntasks: 2\nwidth: 8\nsteps: 20\neval_every: 10\ncheckpoint_every: 20\n"
        "orderings:\n  soft: {soft_norm: l2, lr: 0.01}\n"
    )
    assert main(["compare", "synthetic", "--config", str(cfg), "--orderings", "soft", "--trials", "1",
                 "--workers", "1", "--set", "soft_norm=none", "--out", str(tmp_path / "o")]) == 0
    run = json.loads((tmp_path / "o" / "results.json").read_text())["methods"]["soft"]
    assert run["overrides"] == {"lr": 0.01}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_pool_workers_end_when_compare_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed compare must not leave its pool workers training in the background."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from softorder.experiments.pool import die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    ctx = mp.get_context('spawn')\n"
        "    pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=die_with_parent)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 60)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker), "the pool worker outlived its killed parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has already exited
    except FileNotFoundError:
        return False
