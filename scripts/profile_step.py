"""Where a `softorder bench` training step spends its time, and what a bare matmul reaches.

    python scripts/profile_step.py transformer-T8            # profiler tables: fused, parallel
    python scripts/profile_step.py --mm                      # GFLOP/s of plain mm (the ceiling)

The profiler tables (``torch.profiler``, 3 steps after 2 warm-up steps, sorted by self CPU time)
are behind the percentages in docs/speed.md; ``--mm`` times ``a @ b`` at the block workloads'
shapes (the most a step of these shapes can reach on this machine).
"""

from __future__ import annotations

import argparse
import time

import torch

from softorder.bench import BLOCKS, WORKLOADS, block_steps

MM_SHAPES = [(4096, 128, 512), (4096, 512, 128), (4096, 128, 384), (512, 128, 512)]


def mm_gflops(m: int, k: int, n: int, reps: int = 50) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(5):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", nargs="?", choices=[w for w in WORKLOADS if WORKLOADS[w].kind in BLOCKS])
    p.add_argument("--mm", action="store_true", help="time plain matmuls instead")
    p.add_argument("--rows", type=int, default=14, help="profiler rows per table")
    args = p.parse_args()
    print(f"{torch.get_num_threads()} threads")
    if args.mm:
        for shape in MM_SHAPES:
            print(f"mm {shape}: {mm_gflops(*shape):.0f} GFLOP/s")
        return
    if args.workload is None:
        p.error("name a workload, or --mm")
    steps = block_steps(WORKLOADS[args.workload], torch.device("cpu"), "fp32")
    for name in ("fused", "parallel"):
        step = steps[name]
        for _ in range(2):
            step()
        with torch.profiler.profile() as prof:
            for _ in range(3):
                step()
        print(f"\n{args.workload} {name} (3 steps)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
