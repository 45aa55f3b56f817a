"""``softorder experiment fit-random``: how many random samples can shared layers fit (Sec. 3.2)?

Two tasks, each of ``n`` random samples ``x ∈ [0, 1]^m`` with random binary labels, share two affine
layers ``W1, W2`` (``m -> m``) and one classifier (``m -> 1``, sigmoid). With *parallel* ordering
both tasks apply ``W1`` then ``W2``; with *permuted* ordering task 1 applies ``W1`` then ``W2`` and
task 2 applies ``W2`` then ``W1``. In the linear case (``m = 128``) parallel ordering is one linear
classifier that must fit all ``2n`` samples, while permuted ordering gives each task its own
function of the same parameters. The paper finds that permuted ordering fits ``n`` samples per task
about as well as parallel ordering fits ``n/2`` (its Fig. 2). The ReLU case (``m = 16``) puts a
ReLU after each layer. Each model is trained full-batch with Adam on the two tasks' mean
cross-entropy, and the measure is the final *training* accuracy (the fraction of samples fit).

The model is written plainly here, not with :class:`softorder.nn.MultiTaskNet`, because the
classifier is shared between the tasks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softorder.report.plots import save_figure

ORDERS = ("parallel", "permuted")


@dataclass
class FitRandomConfig:
    """Sizes of the experiment; ``n`` per task is ``factor * m`` for each factor."""

    linear_m: int = 128
    relu_m: int = 16
    linear_factors: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    relu_factors: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0, 48.0, 64.0)
    steps: int = 1500
    lr: float = 1e-2
    seeds: tuple[int, ...] = (0, 1)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> FitRandomConfig:
        """A CI-sized run: small m, few sample sizes and steps."""
        return cls(linear_m=16, relu_m=8, linear_factors=(0.5, 1.0, 2.0, 4.0),
                   relu_factors=(2.0, 4.0, 8.0, 16.0), steps=150, seeds=(0,))


class SharedPairs(nn.Module):
    """``B`` independent copies of the Sec. 3.2 model, trained side by side as one batched model:
    two shared affine layers ``W1, W2`` (``m -> m``) and a shared classifier (``m -> 1``) each.
    Copy ``b`` uses permuted ordering where ``permuted[b]`` is true (task 1 applies ``W2`` then
    ``W1``), parallel ordering otherwise. Initialised as ``nn.Linear`` would be."""

    def __init__(self, m: int, permuted: Sequence[bool], relu: bool) -> None:
        super().__init__()
        B, bound = len(permuted), 1.0 / m**0.5

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w1, self.b1 = uniform(B, m, m), uniform(B, 1, m)
        self.w2, self.b2 = uniform(B, m, m), uniform(B, 1, m)
        self.c, self.cb = uniform(B, m, 1), uniform(B, 1, 1)
        self.register_buffer("permuted", torch.tensor(list(permuted)).view(B, 1, 1))
        self.relu = relu

    def _act(self, h: Tensor) -> Tensor:
        return F.relu(h) if self.relu else h

    def forward(self, x: Tensor, task: int) -> Tensor:
        """Logits of one task's samples for every copy: ``[B, n, m] -> [B, n]``."""
        wa: Tensor
        ba: Tensor
        wb: Tensor
        bb: Tensor
        (wa, ba), (wb, bb) = (self.w1, self.b1), (self.w2, self.b2)
        if task == 1:  # permuted copies swap the two layers for the second task
            p = cast(Tensor, self.permuted)
            (wa, ba), (wb, bb) = (torch.where(p, wb, wa), torch.where(p, bb, ba)), \
                                 (torch.where(p, wa, wb), torch.where(p, ba, bb))
        h = self._act(torch.baddbmm(bb, self._act(torch.baddbmm(ba, x, wa)), wb))
        return torch.baddbmm(self.cb, h, self.c).squeeze(2)


def fit_accuracies(
    m: int, n: int, relu: bool, steps: int, lr: float, seeds: Sequence[int]
) -> dict[str, list[float]]:
    """Training accuracy over both tasks after fitting ``n`` random samples per task, for each
    ordering and seed: ``{"parallel": [per seed], "permuted": [per seed]}``. Both orderings of a seed
    see the same samples, labels and initial weights."""
    if m < 1 or n < 1 or steps < 1 or not seeds:
        raise ValueError(f"m, n, steps and the seeds must be positive/non-empty, got m={m}, n={n}, "
                         f"steps={steps}, seeds={list(seeds)}")
    xs, ys, inits = [], [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        xs.append(torch.rand(2, n, m, generator=gen))
        ys.append(torch.randint(0, 2, (2, n), generator=gen).float())
        torch.manual_seed(seed)
        inits.append(SharedPairs(m, [False], relu).state_dict())
    x = torch.stack(xs * 2)  # [B, task, n, m]: copies 0..S-1 parallel, S..2S-1 permuted
    y = torch.stack(ys * 2)
    model = SharedPairs(m, [False] * len(seeds) + [True] * len(seeds), relu)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.cat([init[name] for init in inits] * 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = sum(F.binary_cross_entropy_with_logits(model(x[:, t], t), y[:, t], reduction="sum")
                   for t in range(2)) / (2 * n)
        loss.backward()  # type: ignore[union-attr]
        opt.step()
    with torch.no_grad():
        acc = sum(((model(x[:, t], t) > 0).float() == y[:, t]).float().sum(1) for t in range(2)) / (2 * n)
    S = len(seeds)
    return {"parallel": acc[:S].tolist(), "permuted": acc[S:].tolist()}


def _case(m: int, factors: Sequence[float], relu: bool, cfg: FitRandomConfig) -> dict[str, Any]:
    ns = sorted({max(1, round(f * m)) for f in factors})
    case: dict[str, Any] = {"m": m, "n": ns}
    fits = [fit_accuracies(m, n, relu, cfg.steps, cfg.lr, cfg.seeds) for n in ns]
    for ordering in ORDERS:
        case[ordering] = [float(np.mean(f[ordering])) for f in fits]
        case[f"{ordering}_per_seed"] = [f[ordering] for f in fits]
    # The paper's finding: permuted at n vs parallel at n/2, wherever n/2 is on the grid.
    case["permuted_n_vs_parallel_half_n"] = [
        {"n": n, "permuted": case["permuted"][i], "parallel_at_half_n": case["parallel"][ns.index(n // 2)]}
        for i, n in enumerate(ns) if n % 2 == 0 and n // 2 in ns
    ]
    return case


def plot_fit_random(results: dict[str, Any], out: str | Path) -> Path:
    """Training accuracy vs samples per task, both orderings, one panel per case (Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in ("linear", "relu") if c in results]
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 3.6), squeeze=False)
    for ax, name in zip(axes[0], cases):
        case = results[name]
        ns = np.asarray(case["n"])
        ax.plot(ns, case["parallel"], "o-", label="parallel")
        ax.plot(ns, case["permuted"], "s-", label="permuted")
        ax.plot(2 * ns, case["parallel"], ":", color="gray", label="parallel at n/2")
        ax.set_xlim(0, ns.max() * 1.05)
        ax.set_ylim(0.45, 1.02)
        ax.set_xlabel("samples per task n")
        ax.set_ylabel("training accuracy")
        ax.set_title(f"{name}, m = {case['m']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, out)


def fit_random(out_dir: str | Path | None = None, config: FitRandomConfig | None = None) -> dict[str, Any]:
    """Run both cases (linear, ReLU) for both orderings; write ``fit_random.json`` and
    ``fit_random.png`` into ``out_dir`` when given; return the results."""
    cfg = config or FitRandomConfig()
    start = time.perf_counter()
    results: dict[str, Any] = {
        "experiment": "fit-random", "paper": "Sec. 3.2, Fig. 2",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "linear": _case(cfg.linear_m, cfg.linear_factors, False, cfg),
        "relu": _case(cfg.relu_m, cfg.relu_factors, True, cfg),
    }
    results["time_s"] = time.perf_counter() - start
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "fit_random.json").write_text(json.dumps(results, indent=1))
        png = plot_fit_random(results, out / "fit_random.png")
        results["files"] = [str(out / "fit_random.json"), str(png)]
    return results


def summary_rows(results: dict[str, Any]) -> list[list[Any]]:
    """``[case, m, n, parallel acc, permuted acc]`` rows for a printed table."""
    return [[c, results[c]["m"], n, results[c]["parallel"][i], results[c]["permuted"][i]]
            for c in ("linear", "relu") for i, n in enumerate(results[c]["n"])]
