"""``softorder bench``: time one training step (forward + backward + Adam) of the fused
soft-ordering network against the readable per-task/per-depth/per-layer loop
(``reference_forward``) and against fused parallel ordering, and print the ratios, the throughput
and the achieved TFLOP/s.

    softorder bench                                   # CPU-sized workloads, table
    softorder bench --json                            # one JSON object per workload
    softorder bench --device cuda --dtype bf16 --workloads dense-T10,dense-T40,conv-T50

Soft ordering computes every layer at every depth, i.e. D times the core FLOPs of parallel
ordering, so fused/parallel near D is the arithmetic floor when compute-bound. FLOPs are counted
analytically (a multiply-add is 2 FLOPs; backward = 2 × forward, so a step is 3 × forward).
``scripts/bench_core.py`` is the same tool as a script. Dense workloads also time ``peer``: a
public soft-ordering model's training step (:class:`PeerSoftOrder`), re-implemented. The block
workloads (``resmlp``, ``transformer``) time a :class:`~softorder.SoftOrder` layer.

(Over 300 lines: the workloads, the four step builders and the table are one tool, read together.)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import softorder as so
from softorder.nn import MultiTaskNet, reference_forward
from softorder.nn.blocks import ResidualMLP, TransformerBlock
from softorder.nn.orderings import FOLLOW_UPS
from softorder.train.graphs import WARM_UP_STEPS, GraphedStep


@dataclass(frozen=True)
class Workload:
    """One benchmark shape: ``tasks`` tasks of ``batch`` rows each through ``layers`` shared layers."""

    name: str
    kind: str  # dense | conv (the paper's banks) | resmlp | transformer (a ModuleBank of blocks)
    tasks: int
    layers: int
    width: int  # dense width (and input features) or conv channels
    batch: int  # per task
    image: int = 0
    padding: int = 0
    classes: int = 10
    kernel: int = 3
    seq: int = 0  # transformer: tokens per row
    heads: int = 0  # transformer: attention heads


WORKLOADS = {
    w.name: w
    for w in [
        Workload("dense-T10", "dense", 10, 4, 32, 64),
        Workload("dense-T40", "dense", 40, 4, 256, 256),
        Workload("conv-T10-28px", "conv", 10, 4, 53, 16, image=28, padding=1, classes=20),
        Workload("conv-T50", "conv", 50, 4, 53, 16, image=105, padding=0, classes=20),
        Workload("resmlp-T10", "resmlp", 10, 4, 64, 64),
        Workload("transformer-T8", "transformer", 8, 4, 128, 16, seq=32, heads=4),
    ]
}
BLOCKS = ("resmlp", "transformer")  # workloads of a SoftOrder layer over a ModuleBank of blocks
CPU_DEFAULT = "dense-T10,dense-T40,conv-T10-28px,resmlp-T10,transformer-T8"
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build(
    w: Workload, ordering: str, device: torch.device, channels_last: bool = False
) -> tuple[MultiTaskNet, list, list]:
    """The net of ``w`` with ``ordering`` and one random batch per task, on ``device``."""
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
            kernel_size=w.kernel,
            padding=w.padding,
            ordering=ordering,
            channels_last=channels_last,
        )
        xs = [torch.randn(w.batch, 1, w.image, w.image, device=device) for _ in range(w.tasks)]
    ys = [torch.randint(0, w.classes, (w.batch,), device=device) for _ in range(w.tasks)]
    return net.to(device), xs, ys


def step_fn(net: MultiTaskNet, xs: list, ys: list, loop: bool, dtype: str) -> Callable[[], None]:
    """One training step (Adam) of ``net``, through the reference loop when ``loop``."""
    try:  # the optimizer the trainer uses (fused Adam where available), for loop and fused alike
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)
    for t, y in enumerate(ys):  # labels are checked once, as the trainer does, not every step
        net.decoders.check_target(t, y)
    device_type = xs[0].device.type
    amp_dtype = DTYPES[dtype]

    def step() -> None:
        amp = torch.autocast(device_type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = reference_forward(net, xs) if loop else net(xs)
            loss = net.losses([z.float() for z in logits], ys, check=False).sum()
        loss.backward()
        opt.step()

    return step


def graphed_step_fn(net: MultiTaskNet, xs: list, ys: list, dtype: str) -> Callable[[], None]:
    """The fused training step captured as one CUDA graph and replayed (``cuda_graphs``,
    :class:`~softorder.train.graphs.GraphedStep`; its first calls run eagerly)."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True, capturable=True)
    amp_dtype = DTYPES[dtype]

    def step(xs_: Any, ys_: list[Tensor]) -> Tensor:
        amp = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with amp:
            losses = net.losses([z.float() for z in net(xs_)], ys_, check=False)
        losses.sum().backward()
        opt.step()
        return losses.detach()

    graphed = GraphedStep(step, lambda: opt.zero_grad(set_to_none=True))

    def replay() -> None:
        graphed(xs, ys)

    return replay


def timeit(step: Callable[[], None], device: torch.device, min_time: float, warmup: int) -> float:
    """Median milliseconds of ``step`` (at least 3 runs, up to ``min_time`` s or 200 runs)."""
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


def block_steps(w: Workload, device: torch.device, dtype: str) -> dict[str, Callable[[], None]]:
    """The three training steps of a blocks workload (Sec. 3.3 on any blocks): ``fused``, a
    :class:`~softorder.SoftOrder` over a :class:`~softorder.nn.ModuleBank` (every block on every
    row in one vmapped call); ``loop``, what public code does: per task, per depth, a Python sum
    over the original modules of ``softmax(S)``-weighted outputs; ``parallel``, the blocks in one
    order on all rows (the arithmetic floor: soft ordering runs L blocks per depth)."""
    torch.manual_seed(0)
    blocks = [
        ResidualMLP(w.width) if w.kind == "resmlp" else TransformerBlock(w.width, w.heads)
        for _ in range(w.layers)
    ]
    layer = so.SoftOrder([copy.deepcopy(b) for b in blocks], w.tasks).to(device)
    plain = nn.ModuleList(copy.deepcopy(b) for b in blocks).to(device)
    S = nn.Parameter(torch.zeros(w.tasks, w.layers, w.layers, device=device))
    shape = (w.seq, w.width) if w.kind == "transformer" else (w.width,)
    x = torch.randn(w.tasks * w.batch, *shape, device=device)
    tasks = torch.arange(w.tasks, device=device).repeat_interleave(w.batch)

    def loop() -> Tensor:
        outs = []
        for t, xt in enumerate(x.split(w.batch)):
            y = xt
            for k in range(w.layers):
                s = torch.softmax(S[t, k], 0)
                y = cast(Tensor, sum(s[j] * plain[j](y) for j in range(w.layers)))
            outs.append(y)
        return torch.cat(outs)

    def parallel() -> Tensor:
        y = x
        for block in plain:
            y = block(y)
        return y

    forwards: dict[str, tuple[Callable[[], Tensor], list[nn.Parameter]]] = {
        "fused": (lambda: layer(x, tasks), list(layer.parameters())),
        "loop": (loop, [*plain.parameters(), S]),
        "parallel": (parallel, list(plain.parameters())),
    }
    amp_dtype = DTYPES[dtype]

    def make(forward: Callable[[], Tensor], params: list[nn.Parameter]) -> Callable[[], None]:
        opt = torch.optim.Adam(params, lr=1e-3)

        def step() -> None:
            amp = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            opt.zero_grad(set_to_none=True)
            with amp:
                loss = forward().float().pow(2).mean()
            loss.backward()
            opt.step()

        return step

    return {name: make(*f) for name, f in forwards.items()}


class PeerSoftOrder(nn.Module):
    """A public implementation's soft-ordering model, re-implemented from its published description
    (cognizant-ai-labs/tom-release, ``SoftOrderModel``; not copied): per-task linear encoders and
    decoders, L shared ``Linear`` layers as separate modules, S of shape [T, L, L], and a forward
    call that handles ONE task: at each depth ``Σ_j softmax(S[task, k])_j · dropout(relu(F_j(y)))``
    as a Python loop over the layers (Eq. 7). The `peer` column of ``softorder bench``."""

    def __init__(self, in_features: int, width: int, layers: int, classes: int, tasks: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(nn.Linear(in_features, width) for _ in range(tasks))
        self.core = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.decoders = nn.ModuleList(nn.Linear(width, classes) for _ in range(tasks))
        self.S = nn.Parameter(torch.zeros(tasks, layers, layers))
        self.dropout = nn.Dropout(0.0)

    def forward(self, x: Tensor, task: int) -> Tensor:
        y = torch.relu(self.encoders[task](x))
        for k in range(len(self.core)):
            s = torch.softmax(self.S[task, k], 0)
            y = cast(Tensor, sum(s[j] * self.dropout(torch.relu(f(y))) for j, f in enumerate(self.core)))
        return self.decoders[task](y)


def peer_step(w: Workload, device: torch.device) -> Callable[[], None]:
    """One training step of :class:`PeerSoftOrder` on a dense workload: one forward call per task,
    the tasks' cross-entropies summed, one Adam step (what softorder's trainer does per step)."""
    torch.manual_seed(0)
    net = PeerSoftOrder(w.width, w.width, w.layers, w.classes, w.tasks).to(device)
    xs = [torch.randn(w.batch, w.width, device=device) for _ in range(w.tasks)]
    ys = [torch.randint(0, w.classes, (w.batch,), device=device) for _ in range(w.tasks)]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = cast(Tensor, sum(F.cross_entropy(net(x, t), y) for t, (x, y) in enumerate(zip(xs, ys))))
        loss.backward()
        opt.step()

    return step


def step_flops(w: Workload, ordering: str = "soft") -> float:
    """FLOPs of one training step of ``w`` (forward matmuls/convolutions × 3 for fwd + bwd).

    Soft ordering runs all L layers at each of the L depths and mixes them; parallel runs one. The
    conv core's first depth convolves the one image channel (not its zero-padding to C).
    Elementwise work (bias, ReLU, pooling, dropout, the loss) is not counted."""
    n = w.tasks * w.batch
    per_depth = w.layers if ordering == "soft" else 1
    fwd = 0.0
    if w.kind == "resmlp":  # two width x 4 width matmuls per block
        return 3.0 * w.layers * per_depth * 2 * n * 2 * w.width * 4 * w.width
    if w.kind == "transformer":  # per token: q, k, v, out (4 d^2), feed-forward (8 d^2), attention (2 seq d)
        d, tokens = w.width, n * w.seq
        return 3.0 * w.layers * per_depth * 2 * tokens * (12 * d * d + 2 * w.seq * d)
    if w.kind == "dense":
        fwd += 2 * n * w.width * w.width  # encoders (in_features = width)
        fwd += w.layers * 2 * n * w.width * (per_depth * w.width)  # the core
        if ordering == "soft":
            fwd += w.layers * 2 * n * w.layers * w.width  # Eq. 7 mixing
        fwd += 2 * n * w.width * w.classes  # decoders
    else:
        c, c_in, h = w.width, 1, w.image  # the first depth reads the image's one channel (ConvBank)
        for _ in range(w.layers):
            h_conv = h + 2 * w.padding - w.kernel + 1
            fwd += 2 * n * (per_depth * c) * c_in * w.kernel * w.kernel * h_conv * h_conv
            c_in = c
            h = h_conv // 2
            if ordering == "soft":
                fwd += 2 * n * w.layers * c * h * h
        fwd += 2 * n * c * h * h * w.classes  # decoders
    return 3.0 * fwd


def run(
    w: Workload,
    device: torch.device,
    dtype: str,
    min_time: float,
    skip_loop: bool,
    channels_last: bool = False,
    learned: bool = False,
) -> dict[str, Any]:
    """Time the fused, parallel and (unless ``skip_loop``) loop steps of ``w``: one result record;
    ``learned``: also the fused steps of the gated and routed orderings (the paper's banks)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    torch.manual_seed(0)
    res: dict[str, Any] = {"workload": w.name, "device": device_name(device), "dtype": dtype}
    steps = block_steps(w, device, dtype) if w.kind in BLOCKS else {}
    for label, ordering, loop in [
        ("fused", "soft", False),
        ("parallel", "parallel", False),
        ("loop", "soft", True),
    ]:
        if loop and skip_loop:
            res["loop_ms"] = None
            continue
        if steps:
            res[f"{label}_ms"] = timeit(steps[label], device, min_time, warmup=2)
            continue
        net, xs, ys = build(w, ordering, device, channels_last)
        res[f"{label}_ms"] = timeit(step_fn(net, xs, ys, loop, dtype), device, min_time, warmup=2)
    for ordering in FOLLOW_UPS:  # training steps: a routed core runs every layer then too
        res[f"{ordering}_ms"] = None
        if learned and not steps:
            net, xs, ys = build(w, ordering, device, channels_last)
            res[f"{ordering}_ms"] = timeit(step_fn(net, xs, ys, False, dtype), device, min_time, warmup=2)
    res["graphed_ms"] = None  # the fused step replayed as a CUDA graph (the paper's banks, on CUDA)
    if device.type == "cuda" and not steps:
        net, xs, ys = build(w, "soft", device, channels_last)
        graphed = graphed_step_fn(net, xs, ys, dtype)
        res["graphed_ms"] = timeit(graphed, device, min_time, warmup=WARM_UP_STEPS + 2)
    res["loop_over_fused"] = res["loop_ms"] / res["fused_ms"] if res["loop_ms"] else None
    peer = w.kind == "dense" and not skip_loop
    res["peer_ms"] = timeit(peer_step(w, device), device, min_time, warmup=2) if peer else None
    res["peer_over_fused"] = res["peer_ms"] / res["fused_ms"] if res["peer_ms"] else None
    res["fused_over_parallel"] = res["fused_ms"] / res["parallel_ms"]
    res["samples_per_s"] = w.tasks * w.batch / res["fused_ms"] * 1e3
    res["sample"] = "image" if w.kind == "conv" else "row"
    res["step_gflop"] = step_flops(w, "soft") / 1e9
    res["fused_tflops"] = step_flops(w, "soft") / res["fused_ms"] / 1e9
    res["parallel_tflops"] = step_flops(w, "parallel") / res["parallel_ms"] / 1e9
    # the loop does the fused step's FLOPs: its rate says how far fusing can go (compute-bound: ~1x)
    res["loop_tflops"] = step_flops(w, "soft") / res["loop_ms"] / 1e9 if res["loop_ms"] else None
    res["channels_last"] = channels_last and w.kind == "conv"
    return res


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


HEADER = (
    f"{'workload':<15} {'device':<24} {'dtype':<5} {'loop ms':>9} {'fused ms':>9} {'parallel ms':>11} "
    f"{'loop/fused':>10} {'fused/par':>9} {'samples/s':>15} {'TFLOP/s':>8} {'peer ms':>9} {'peer/fused':>10}"
    f" {'graphed ms':>10} {'gated ms':>9} {'routed ms':>9}"
)


def format_row(r: dict[str, Any]) -> str:
    """One table line of a :func:`run` record (throughput of the fused step; images/s for conv)."""
    loop = f"{r['loop_ms']:9.2f}" if r["loop_ms"] else f"{'-':>9}"
    ratio = f"{r['loop_over_fused']:9.1f}x" if r["loop_ms"] else f"{'-':>10}"
    unit = "img/s" if r.get("sample") == "image" else "rows/s"
    peer = f"{r['peer_ms']:9.2f} {r['peer_over_fused']:9.1f}x" if r.get("peer_ms") else f"{'-':>9} {'-':>10}"
    graphed = f"{r['graphed_ms']:10.3f}" if r.get("graphed_ms") else f"{'-':>10}"
    learned = " ".join(f"{r[f'{o}_ms']:9.2f}" if r.get(f"{o}_ms") else f"{'-':>9}" for o in FOLLOW_UPS)
    return (
        f"{r['workload']:<15} {r['device'][:24]:<24} {r['dtype']:<5} {loop} "
        f"{r['fused_ms']:9.2f} {r['parallel_ms']:11.2f} {ratio} "
        f"{r['fused_over_parallel']:9.2f} {r['samples_per_s']:8.0f} {unit:<6} {r['fused_tflops']:8.3f} "
        f"{peer} {graphed} {learned}"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``softorder bench`` (and ``scripts/bench_core.py``)."""
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="autocast dtype (default fp32)")
    p.add_argument("--workloads", default=None, help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per variant")
    p.add_argument("--skip-loop", action="store_true", help="do not time the reference loop")
    p.add_argument("--channels-last", action="store_true", help="conv workloads: NHWC activations")
    p.add_argument("--learned", action="store_true",
                   help="also time the training steps of the gated and routed orderings")
    p.add_argument("--json", action="store_true", help="print one JSON object per workload")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the workloads of ``args`` and print a table (or JSON lines)."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    names = [
        n
        for n in (args.workloads or (CPU_DEFAULT if device.type == "cpu" else ",".join(WORKLOADS))).split(",")
        if n
    ]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    if not args.json:
        print(HEADER, flush=True)
    for name in names:
        r = run(WORKLOADS[name], device, args.dtype, args.min_time, args.skip_loop, args.channels_last,
                args.learned)
        print(json.dumps(r) if args.json else format_row(r), flush=True)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``softorder bench`` to the command line."""
    p = subparsers.add_parser(
        "bench",
        help="time fused soft ordering vs the reference loop and parallel ordering",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=cmd_bench)
