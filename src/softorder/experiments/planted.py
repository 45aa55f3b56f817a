"""``softorder experiment planted``: does soft ordering recover a planted layer order?

Beyond the paper: D random shared *primitives* ``P_j(h) = ReLU(A_j h + b_j)`` (``A_j`` a random
orthogonal matrix times √2, so activations keep their scale) and T tasks whose target is the
composition of the primitives in a task-specific order, ``y = P_{π_t(D-1)}(… P_{π_t(0)}(x))`` with
``x ~ N(0, I)`` (plus Gaussian noise of ``noise`` times the target's std). ``ceil(T/2)`` distinct
orders are drawn (at most D!) and task t gets order ``t mod ceil(T/2)``, so some tasks share an order
and some do not.

A soft-ordering core (Eq. 7) ``SoftOrdering(DenseBank(width, D), T)``, with identity encoders and
decoders, is fitted to all tasks by Adam on the mean squared error, S with its own, larger learning
rate ``s_lr``. A task counts as *recovered* when the strongest path of softmax(S[t]) (the argmax
layer at each depth, Fig. 4d) equals its planted order; chance is ``1/D!`` (a random order).

Three ``mode``\\ s say how the shared layers start:

* ``frozen``: the bank is fixed at the primitives and only S is learned: does S find the order?
* ``warm``: the bank starts at the primitives plus Gaussian noise of ``perturb`` times their scale,
  and is learned together with S;
* ``scratch``: the bank starts at random. The learned layers are matched to the primitives first
  (the Hungarian algorithm on how well each learned layer reproduces each primitive), because a model
  may number its layers differently.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from softorder.nn import DenseBank, Rows, SoftOrdering
from softorder.report.plots import save_figure

MODES = ("frozen", "warm", "scratch")


@dataclass
class PlantedConfig:
    """The grid (``tasks`` × ``layers`` × ``noise`` × ``modes`` × ``seeds``) and the training recipe."""

    tasks: tuple[int, ...] = (4, 8)
    layers: tuple[int, ...] = (3, 4)  # D: primitives = shared layers = depths
    noise: tuple[float, ...] = (0.0, 0.5)
    modes: tuple[str, ...] = ("frozen", "warm")
    seeds: tuple[int, ...] = (0, 1)
    width: int = 16
    samples: int = 128  # per task
    steps: int = 300
    lr: float = 1e-2  # shared layers
    s_lr: float = 0.1  # S: larger, so that the scalings move while the layers settle
    perturb: float = 0.5  # warm mode: noise on the primitives, relative to their scale

    @classmethod
    def quick(cls) -> PlantedConfig:
        """A CI-sized run: D=3, T=6, one seed, a few hundred full-batch steps."""
        return cls(tasks=(6,), layers=(3,), noise=(0.0, 0.5), seeds=(0,), samples=64, steps=200)

    def __post_init__(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise ValueError(f"unknown planted mode(s) {bad}; choose from {', '.join(MODES)}")
        if min(self.layers, default=2) < 2 or min(self.tasks, default=1) < 1:
            raise ValueError(
                f"need at least 2 layers and 1 task, got layers={self.layers}, tasks={self.tasks}"
            )


def make_task_orders(num_tasks: int, num_layers: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``ceil(T/2)`` distinct random orders (at most D!), task t taking order ``t mod ceil(T/2)``."""
    distinct = min(math.factorial(num_layers), math.ceil(num_tasks / 2))
    pool: list[tuple[int, ...]] = []
    while len(pool) < distinct:
        order = tuple(int(j) for j in rng.permutation(num_layers))
        if order not in pool:
            pool.append(order)
    return [pool[t % distinct] for t in range(num_tasks)]


def primitives(num_layers: int, width: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Weights ``[D, w, w]`` (orthogonal × √2) and biases ``[D, w]`` of the planted primitives."""
    a = torch.stack([torch.linalg.qr(torch.randn(width, width, generator=gen))[0] for _ in range(num_layers)])
    return a * math.sqrt(2.0), 0.1 * torch.randn(num_layers, width, generator=gen)


def compose(a: Tensor, b: Tensor, order: Sequence[int], x: Tensor) -> Tensor:
    """The primitives applied to ``x`` in ``order``."""
    for j in order:
        x = F.relu(x @ a[j].T + b[j])
    return x


def match_layers(bank: DenseBank, a: Tensor, b: Tensor, probe: Tensor) -> list[int]:
    """For each learned layer, the primitive it reproduces best on ``probe`` (a one-to-one matching)."""
    with torch.no_grad():
        cost = np.array([[float(F.mse_loss(bank.layer(j, probe), F.relu(probe @ a[i].T + b[i])))
                          for i in range(len(a))] for j in range(bank.num_layers)])
    rows, cols = linear_sum_assignment(cost)
    return [int(c) for _, c in sorted(zip(rows, cols))]


def run_planted(num_tasks: int, num_layers: int, noise: float, mode: str, seed: int,
                cfg: PlantedConfig) -> dict[str, Any]:
    """One fit; returns the planted orders, the strongest paths and the recovery rate."""
    if mode not in MODES:
        raise ValueError(f"unknown planted mode {mode!r}; choose from {', '.join(MODES)}")
    gen = torch.Generator().manual_seed(seed)
    orders = make_task_orders(num_tasks, num_layers, np.random.default_rng(seed))
    a, b = primitives(num_layers, cfg.width, gen)
    x = torch.randn(num_tasks, cfg.samples, cfg.width, generator=gen)
    y = torch.stack([compose(a, b, o, x[t]) for t, o in enumerate(orders)])
    y = y + noise * y.std() * torch.randn(y.shape, generator=gen)
    torch.manual_seed(seed)
    core = SoftOrdering(DenseBank(cfg.width, num_layers, init="he"), num_tasks)
    groups: list[dict[str, Any]] = [{"params": [core.S], "lr": cfg.s_lr}]
    if mode != "scratch":
        with torch.no_grad():
            core.bank.weight.copy_(a + cfg.perturb * float(a.std()) * torch.randn(a.shape, generator=gen)
                                   if mode == "warm" else a)
            core.bank.bias.copy_(b)
    if mode != "frozen":
        groups.append({"params": list(core.bank.parameters()), "lr": cfg.lr})
    opt = torch.optim.Adam(groups)
    rows = Rows(tuple(range(num_tasks)), (cfg.samples,) * num_tasks)
    xs, ys = x.reshape(-1, cfg.width), y.reshape(-1, cfg.width)
    for _ in range(cfg.steps):
        opt.zero_grad()
        loss = F.mse_loss(core(xs, rows), ys)
        loss.backward()
        opt.step()
    w = core.weights().detach()
    paths = [[int(j) for j in w[t].argmax(1)] for t in range(num_tasks)]
    if mode == "scratch":
        probe = torch.cat([xs[: 4 * cfg.samples], *(compose(a, b, [j], x[0]) for j in range(num_layers))])
        assert isinstance(core.bank, DenseBank)
        relabel = match_layers(core.bank, a, b, probe)
        paths = [[relabel[j] for j in p] for p in paths]
    hits = [p == list(o) for p, o in zip(paths, orders)]
    return {
        "tasks": num_tasks, "layers": num_layers, "noise": noise, "mode": mode, "seed": seed,
        "orders": [list(o) for o in orders], "paths": paths, "recovered": hits,
        "recovery": float(np.mean(hits)), "chance": 1.0 / math.factorial(num_layers),
        "relative_mse": float(loss.detach()) / float(y.var()),
        "mean_max_weight": float(w.max(-1).values.mean()),
    }


def summarise(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean recovery over seeds for each (mode, T, D, noise) setting."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["mode"], r["tasks"], r["layers"], r["noise"]), []).append(r)
    return [{"mode": k[0], "tasks": k[1], "layers": k[2], "noise": k[3], "seeds": len(g),
             "recovery": float(np.mean([r["recovery"] for r in g])), "chance": g[0]["chance"],
             "relative_mse": float(np.mean([r["relative_mse"] for r in g]))}
            for k, g in groups.items()]


def plot_planted(summary: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Recovery rate per setting (bars) against chance 1/D! (black ticks), one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(s["mode"] for s in summary))
    per_mode = len(summary) / len(modes)
    fig, axes = plt.subplots(1, len(modes), figsize=(0.8 * per_mode * len(modes) + 2.5, 3.4),
                             squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        rows = [s for s in summary if s["mode"] == mode]
        xs = np.arange(len(rows))
        ax.bar(xs, [s["recovery"] for s in rows], color="tab:blue", label="recovered")
        ax.scatter(xs, [s["chance"] for s in rows], marker="_", s=300, color="black", label="chance 1/D!")
        ax.set_xticks(xs, [f"T{s['tasks']} D{s['layers']}\nσ{s['noise']:g}" for s in rows], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"mode: {mode}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("recovery: strongest path = planted order", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower left")
    return save_figure(fig, out)


def planted(out_dir: str | Path | None = None, config: PlantedConfig | None = None) -> dict[str, Any]:
    """Run the grid; write ``planted.json`` and ``planted.png`` into ``out_dir`` when given."""
    cfg = config or PlantedConfig()
    start = time.perf_counter()
    runs = [run_planted(t, d, s, m, seed, cfg) for m in cfg.modes for d in cfg.layers for t in cfg.tasks
            for s in cfg.noise for seed in cfg.seeds]
    results: dict[str, Any] = {
        "experiment": "planted",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "summary": summarise(runs), "runs": runs, "time_s": time.perf_counter() - start,
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "planted.json").write_text(json.dumps(results, indent=1))
        png = plot_planted(results["summary"], out / "planted.png")
        results["files"] = [str(out / "planted.json"), str(png)]
    return results

