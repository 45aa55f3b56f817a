"""What reading only the image channel saves at the conv core's first depth (issue 21).

The identity encoder of Sec. 4.3 zero-pads a 1-channel image to C channels; ``ConvBank`` now takes
the 1-channel image as that padding and convolves only its channel (``PadChannels(pad=False)``,
what ``conv_net`` builds). This times one training step (forward, backward) of the 105x105 Omniglot
net both ways, alternating, in one process, and prints the ratio:

    python scripts/conv_input_speed.py --out results/conv-input-speed/result.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import softorder as so


def step_seconds(net: so.MultiTaskNet, xs: list[torch.Tensor], ys: list[torch.Tensor], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        net.zero_grad()
        net.losses(net(xs), ys).sum().backward()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for ordering in ("soft", "parallel"):
        torch.manual_seed(0)
        net = so.conv_net([30] * args.tasks, image_shape=(1, 105, 105), channels=53, ordering=ordering,
                          init="he")
        xs = [torch.rand(args.batch, 1, 105, 105) for _ in range(args.tasks)]
        ys = [torch.randint(0, 30, (args.batch,)) for _ in range(args.tasks)]
        times: dict[bool, list[float]] = {True: [], False: []}
        for pad in (True, False, True, False):  # alternating: the same share of any other load
            net.encoders.pad = pad
            step_seconds(net, xs, ys, 1)  # warm-up for this shape
            times[pad].append(step_seconds(net, xs, ys, args.reps))
        padded, image = min(times[True]), min(times[False])
        rows.append({"ordering": ordering, "padded_s": padded, "image_channel_s": image,
                     "ratio": padded / image})
        print(f"{ordering:<9} padded {padded:.2f} s  image channel only {image:.2f} s  {padded / image:.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"tasks": args.tasks, "batch": args.batch, "threads": 1,
                                        "torch": torch.__version__, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
