"""Time one training step (forward + backward + Adam) of the fused soft-ordering network against
the readable per-task/per-depth/per-layer loop (``reference_forward``) and against fused parallel
ordering, and print the ratios.

    python scripts/bench_core.py                       # CPU-sized workloads, table
    python scripts/bench_core.py --json                # one JSON object per workload
    python scripts/bench_core.py --device cuda --dtype bf16 --workloads dense-T10,dense-T40,conv-T50

Soft ordering computes every layer at every depth, i.e. D times the core FLOPs of parallel
ordering, so fused/parallel near D is the arithmetic floor when compute-bound.

A thin wrapper of ``softorder bench`` (``src/softorder/bench.py``), which holds the workloads and
the measurements.
"""

from __future__ import annotations

import argparse

from softorder.bench import WORKLOADS, add_arguments, build, cmd_bench, run, step_fn, timeit

__all__ = ["WORKLOADS", "build", "main", "run", "step_fn", "timeit"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_arguments(p)
    args = p.parse_args()
    try:
        cmd_bench(args)
    except ValueError as e:
        p.error(str(e))


if __name__ == "__main__":
    main()
