"""Ctrl-C and SIGTERM stop ``compare`` and ``transfer`` with several workers within seconds: every
worker ends, finished trials are reused, unfinished ones resume, and the exit is 130 with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from softorder.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and POSIX signals")

FOREVER = ["--set", "eval_every=10", "--set", "checkpoint_every=10", "--set", "tasks=2", "--set", "width=8"]


def _start(tmp_path: Path, *argv: str) -> subprocess.Popen[str]:
    """The command as a terminal starts it. A test run started in the background by a shell (``cmd
    &``) ignores SIGINT, and a child inherits an ignored signal as ignored; a handled one is reset
    to its default at exec, so the child gets SIGINT as from a terminal whatever started pytest."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, "-m", "softorder", *argv], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, old)


def _wait_for(proc: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, f"ended before {what}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"no {what} in 120 s"
        time.sleep(0.05)


def _stopped(proc: subprocess.Popen[str], sent: float) -> str:
    """What the command said besides run-health warnings; checks it ended with 130 within seconds,
    and no process of its group (workers, helpers) outlived it."""
    try:  # communicate, not wait: a child blocked on a full stderr pipe would never end
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        raise AssertionError(f"still running 30 s after the signal; it said:\n{err[-3000:]}") from None
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("a worker outlived the interrupted command")
        time.sleep(0.05)
    assert took < 10, f"took {took:.1f} s to stop"
    return "\n".join(line for line in err.splitlines() if not line.startswith("softorder: warning:"))


def test_ctrl_c_stops_compare_workers_and_keeps_their_runs(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # soft (queued first) finishes at once; parallel trains until stopped, its trial 2 queued
    cfg = tmp_path / "c.yaml"
    cfg.write_text("benchmark: synthetic\nsteps: 100000\norderings:\n  soft: {steps: 20}\n")
    out = tmp_path / "cmp"
    argv = ["compare", "synthetic", "--config", str(cfg), "--trials", "3", "--workers", "2", "--no-vectorise",
            "--out", str(out), *FOREVER]
    proc = _start(tmp_path, *argv, "--orderings", "soft,parallel")
    runs = out / "runs"
    _wait_for(proc, lambda: all((runs / "soft" / f"trial{k}" / "result.json").exists() for k in range(3))
              and all((runs / "parallel" / f"trial{k}" / "checkpoint.pt").exists() for k in range(2)),
              "finished soft and started parallel trials")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
    assert _stopped(proc, time.monotonic()) == "softorder: interrupted"

    assert main([*argv, "--orderings", "soft"]) == 0  # the finished trials are reused
    assert "(3 trials reused)" in capsys.readouterr().out
    trial = runs / "parallel" / "trial0"  # an unfinished one resumes from its checkpoint
    assert not (trial / "result.json").exists()
    step = torch.load(trial / "checkpoint.pt", weights_only=True)["step"]
    assert main(["train", "--resume", str(trial), "--set", f"steps={step + 10}", "--quiet"]) == 0
    assert json.loads((trial / "result.json").read_text())["steps"] == step + 10


def test_sigterm_stops_transfer_adaptation_workers(tmp_path: Path) -> None:
    out = tmp_path / "tr"
    proc = _start(tmp_path, "transfer", "synthetic", "--sources", "1", "--seeds", "2", "--new-tasks", "2",
                  "--workers", "2", "--out", str(out), *FOREVER, "--set", "steps=20", "--adapt-set",
                  "steps=100000", "--adapt-set", "eval_every=10", "--adapt-set", "checkpoint_every=10")
    _wait_for(proc, lambda: len(list((out / "adapt").rglob("checkpoint.pt"))) >= 2, "adaptations training")
    os.kill(proc.pid, signal.SIGTERM)  # a cluster scheduler's stop, to the main process alone
    assert _stopped(proc, time.monotonic()) == "softorder: interrupted"
