"""A run killed with SIGKILL and resumed ends with exactly the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

CONFIG = """
benchmark: synthetic
tasks: 3
width: 16
dropout: 0.2
steps: 600
eval_every: 50
checkpoint_every: 100
lr: 0.003
threads: 1
"""


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "softorder", "train", *args, "--quiet"]


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    subprocess.run(_cmd(str(cfg), "--out", str(full)), check=True, env=env, capture_output=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(str(cfg), "--out", str(run)), env=env)
    ckpt = run / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < 600
    assert not (run / "result.json").exists()
    # the kill may land while a later checkpoint is written: its temp file stays (SIGKILL cannot be
    # cleaned up after), checkpoint.pt is the last whole one, and the resume removes the temp file
    (run / ".checkpoint.pt.0123456789ab.tmp").write_bytes(b"half a checkpoint")

    subprocess.run(_cmd("--resume", str(run)), check=True, env=env, capture_output=True)
    assert not list(run.glob(".*.tmp")), "a half-written temp file was left behind"
    a = json.loads((full / "result.json").read_text())
    b = json.loads((run / "result.json").read_text())
    for key in ("test_loss", "test_error", "val_loss", "best_step"):
        assert a[key] == b[key], key
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(50, 601, 50))
