"""Time one training step (forward + backward + Adam) of the fused soft-ordering network against
the readable per-task/per-depth/per-layer loop (``reference_forward``) and against fused parallel
ordering, and print the ratios.

    python benchmarks/bench_core.py                       # CPU-sized workloads, table
    python benchmarks/bench_core.py --json                # one JSON object per workload
    python benchmarks/bench_core.py --device cuda --dtype bf16 --workloads dense-T10,dense-T40,conv-T50

Soft ordering computes every layer at every depth, i.e. D times the core FLOPs of parallel
ordering, so fused/parallel near D is the arithmetic floor when compute-bound.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import softorder as so
from softorder.nn import MultiTaskNet, reference_forward


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # dense | conv
    tasks: int
    layers: int
    width: int  # dense width or conv channels
    batch: int  # per task
    image: int = 0
    padding: int = 0
    classes: int = 10


WORKLOADS = {
    w.name: w
    for w in [
        Workload("dense-T10", "dense", 10, 4, 32, 64),
        Workload("dense-T40", "dense", 40, 4, 256, 256),
        Workload("conv-T10-28px", "conv", 10, 4, 53, 16, image=28, padding=1, classes=20),
        Workload("conv-T50", "conv", 50, 4, 53, 16, image=105, padding=0, classes=20),
    ]
}
CPU_DEFAULT = "dense-T10,dense-T40,conv-T10-28px"


def build(w: Workload, ordering: str, device: torch.device) -> tuple[MultiTaskNet, list, list]:
    classes = [w.classes] * w.tasks
    if w.kind == "dense":
        net = so.dense_net(w.width, classes, width=w.width, num_layers=w.layers, ordering=ordering)
        xs = [torch.randn(w.batch, w.width, device=device) for _ in range(w.tasks)]
    else:
        net = so.conv_net(
            classes,
            image_shape=(1, w.image, w.image),
            channels=w.width,
            num_layers=w.layers,
            padding=w.padding,
            ordering=ordering,
        )
        xs = [torch.randn(w.batch, 1, w.image, w.image, device=device) for _ in range(w.tasks)]
    ys = [torch.randint(0, w.classes, (w.batch,), device=device) for _ in range(w.tasks)]
    return net.to(device), xs, ys


def step_fn(net: MultiTaskNet, xs: list, ys: list, loop: bool, dtype: str) -> Callable[[], None]:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    device_type = xs[0].device.type
    amp = torch.autocast(device_type, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = reference_forward(net, xs) if loop else net(xs)
            loss = net.losses([z.float() for z in logits], ys).sum()
        loss.backward()
        opt.step()

    return step


def timeit(step: Callable[[], None], device: torch.device, min_time: float, warmup: int) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run(w: Workload, device: torch.device, dtype: str, min_time: float, skip_loop: bool) -> dict:
    torch.manual_seed(0)
    res: dict = {"workload": w.name, "device": device_name(device), "dtype": dtype}
    for label, ordering, loop in [
        ("fused", "soft", False),
        ("parallel", "parallel", False),
        ("loop", "soft", True),
    ]:
        if loop and skip_loop:
            res["loop_ms"] = None
            continue
        net, xs, ys = build(w, ordering, device)
        res[f"{label}_ms"] = timeit(step_fn(net, xs, ys, loop, dtype), device, min_time, warmup=2)
    res["loop_over_fused"] = res["loop_ms"] / res["fused_ms"] if res["loop_ms"] else None
    res["fused_over_parallel"] = res["fused_ms"] / res["parallel_ms"]
    res["samples_per_s"] = w.tasks * w.batch / res["fused_ms"] * 1e3
    return res


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--workloads", default=None, help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per variant")
    p.add_argument("--skip-loop", action="store_true", help="do not time the reference loop")
    p.add_argument("--json", action="store_true", help="print one JSON object per workload")
    args = p.parse_args()
    device = torch.device(args.device)
    names = args.workloads or (CPU_DEFAULT if device.type == "cpu" else ",".join(WORKLOADS))
    unknown = [n for n in names.split(",") if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    if not args.json:
        print(
            f"{'workload':<15} {'device':<24} {'dtype':<5} {'loop ms':>9} {'fused ms':>9} "
            f"{'parallel ms':>11} {'loop/fused':>10} {'fused/par':>9} {'samples/s':>10}"
        )
    for name in names.split(","):
        r = run(WORKLOADS[name], device, args.dtype, args.min_time, args.skip_loop)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            loop = f"{r['loop_ms']:9.2f}" if r["loop_ms"] else f"{'-':>9}"
            ratio = f"{r['loop_over_fused']:9.1f}x" if r["loop_ms"] else f"{'-':>10}"
            print(
                f"{r['workload']:<15} {r['device'][:24]:<24} {r['dtype']:<5} {loop} "
                f"{r['fused_ms']:9.2f} {r['parallel_ms']:11.2f} {ratio} "
                f"{r['fused_over_parallel']:9.2f} {r['samples_per_s']:10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
