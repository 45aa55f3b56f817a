"""Run many short 2-process trainings under torchrun (gloo, CPU) and count the clean exits.

A clean exit is torchrun's return code 0 and a ``result.json`` in the run directory. Each run
trains the small synthetic config of ``tests/train/test_distributed.py`` (40 steps) in a temporary
directory. This checks that no rank dies at exit after the run succeeded (issue 10); it is not a
CI test (50 runs take about 8 minutes on 2 cores).

    python scripts/stress_distributed.py             # 50 runs
    python scripts/stress_distributed.py --runs 10

Exits non-zero when any run failed, after printing the tail of each failure's stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = (Path(__file__).parent / "distributed_smoke.yaml").read_text()  # shared with the test
TAIL = 60  # stderr lines shown per failure (torchrun's own report alone takes about 40)


def run_once(root: Path, i: int, timeout: float) -> tuple[bool, str]:
    """One torchrun training into ``root/run-i``; returns (clean exit, what went wrong)."""
    out = root / f"run-{i}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "softorder", "train", str(root / "cfg.yaml"), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        return False, f"timed out after {timeout:.0f} s\n{_tail(stderr)}"
    written = (out / "result.json").exists()
    if p.returncode == 0 and written:
        return True, ""
    why = f"return code {p.returncode}, result.json {'present' if written else 'missing'}"
    return False, f"{why}\n{_tail(p.stderr)}"


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=50, help="number of torchrun trainings (default 50)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per run (default 180)")
    args = p.parse_args(argv)
    clean = 0
    with tempfile.TemporaryDirectory(prefix="softorder-stress-") as tmp:
        root = Path(tmp)
        (root / "cfg.yaml").write_text(CONFIG)
        for i in range(args.runs):
            ok, why = run_once(root, i, args.timeout)
            clean += ok
            print(f"run {i + 1}/{args.runs}: {'ok' if ok else 'FAILED'}", flush=True)
            if not ok:
                print(why, flush=True)
    print(f"clean exits: {clean}/{args.runs}")
    return 0 if clean == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
