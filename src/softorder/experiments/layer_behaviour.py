"""``softorder experiment layer-behaviour``: what does each shared layer do at each depth (Sec. 5)?

Ten generative tasks, each one MNIST "4" (the first ten of the training set): task t learns the map
``(x, y) -> brightness`` of its image for every pixel, coordinates and values in ``[0, 1]``. The
model is a soft ordering (Eq. 7) over 4 dense ReLU layers of 100 units, one linear encoder
``Linear(2, 100)`` shared by all tasks and a parameter-free global-average-pooling decoder (the mean
of the 100 units), so the tasks differ *only* in their scalings S.

After training, each task's image is rendered while the magnitude of one mixing weight
``s(t, layer, depth) = softmax(S[t, depth])[layer]`` is scaled up and down (the other weights kept),
which shows how a layer's effect depends on the depth it is applied at: the paper's Table 1 is the
grid for the first two tasks, the first layer and each depth. The same grid is drawn for every layer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softorder.data.mnist import read_mnist
from softorder.nn import DenseBank, MultiTaskNet, SharedEncoder, SoftOrdering, soft_order_step
from softorder.nn.heads import TaskHeads
from softorder.report.plots import save_figure

DIGIT = 4


class GAPDecoders(TaskHeads):
    """Global average pooling over the core's units: every task's prediction is the mean of its
    core output, with no parameters of its own (Sec. 5). Loss: mean squared error, so
    ``standard_loss`` is False (the vectorised trials call :meth:`loss` and :meth:`row_losses`)."""

    standard_loss = False

    def __init__(self, num_tasks: int) -> None:
        super().__init__([1] * num_tasks)  # one output (a brightness) per task
        self.layers = nn.ModuleList(nn.Identity() for _ in range(num_tasks))

    def decode(self, task: int, y: Tensor) -> Tensor:
        return y.flatten(1).mean(1)

    def loss(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(logits, target)

    def row_losses(self, task: int, logits: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(logits, target, reduction="none")

    def predict(self, task: int, logits: Tensor) -> Tensor:
        return logits.clamp(0.0, 1.0)

    def check_target(self, task: int, target: Tensor) -> None:
        if target.dtype.is_floating_point is False:
            raise ValueError(f"task {task}: brightness targets must be floats in [0, 1], got {target.dtype}")


@dataclass
class LayerBehaviourConfig:
    """Sizes of the experiment (the paper's: 10 tasks, 4 layers of 100 units, 28×28 images)."""

    num_tasks: int = 10
    width: int = 100
    num_layers: int = 4
    downsample: int = 1  # average-pool the 28×28 images by this factor
    steps: int = 1000
    batch_pixels: int = 196  # pixels per step (shared by all tasks: single-input mode)
    lr: float = 3e-3
    s_lr: float = 3e-2
    scales: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    seed: int = 0
    data_dir: str | None = None

    @classmethod
    def quick(cls) -> LayerBehaviourConfig:
        """A CI-sized run: 14×14 images, narrow layers, few steps."""
        return cls(width=32, downsample=2, steps=60, batch_pixels=196)


def load_fours(num_tasks: int, downsample: int = 1, data_dir: str | None = None) -> np.ndarray:
    """The first ``num_tasks`` "4"s of the MNIST training set as ``[T, H, W]`` floats in [0, 1]."""
    x, y = read_mnist(data_dir)["train"]
    idx = np.flatnonzero(y == DIGIT)[:num_tasks]
    if len(idx) < num_tasks:
        raise ValueError(f"MNIST has only {len(idx)} images of {DIGIT}; ask for fewer tasks")
    imgs = x[idx].reshape(num_tasks, 28, 28)
    if downsample > 1:
        if 28 % downsample:
            raise ValueError(f"downsample must divide 28, got {downsample}")
        s = 28 // downsample
        imgs = imgs.reshape(num_tasks, s, downsample, s, downsample).mean(axis=(2, 4))
    return np.clip(imgs.astype(np.float32), 0.0, 1.0)


def pixel_coords(height: int, width: int) -> Tensor:
    """``(x, y)`` of every pixel in [0, 1], row-major, ``[H*W, 2]``."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def build_net(num_tasks: int, width: int, num_layers: int) -> MultiTaskNet:
    """Shared linear encoder, soft ordering over a dense bank, GAP decoders (Sec. 5)."""
    core = SoftOrdering(DenseBank(width, num_layers), num_tasks)
    return MultiTaskNet(SharedEncoder(nn.Linear(2, width)), core, GAPDecoders(num_tasks))


def render(net: MultiTaskNet, coords: Tensor, task: int, weights: Tensor) -> Tensor:
    """Task ``task``'s prediction at ``coords`` with the mixing weights ``weights`` ``[K, L]`` in place
    of softmax(S[task]) (the weights need not sum to one)."""
    core = net.core
    with torch.no_grad():
        h = net.encoders.module(coords)  # type: ignore[operator]
        for k in range(core.depth):
            h = soft_order_step(core.bank(h), weights[k].expand(h.shape[0], -1))
        return h.mean(1)


def train(net: MultiTaskNet, coords: Tensor, targets: Tensor, cfg: LayerBehaviourConfig) -> list[float]:
    """Adam on the sum of the tasks' MSE, random pixel batches; returns the loss every 10% of steps."""
    opt = torch.optim.Adam([
        {"params": [p for n, p in net.named_parameters() if not n.endswith(".S")], "lr": cfg.lr},
        {"params": list(net.ordering_parameters()), "lr": cfg.s_lr},
    ])
    gen = torch.Generator().manual_seed(cfg.seed)
    n_pix, history = coords.shape[0], []
    for step in range(cfg.steps):
        idx = torch.randperm(n_pix, generator=gen)[: cfg.batch_pixels]
        losses = net.losses(net(coords[idx]), list(targets[:, idx]))
        opt.zero_grad()
        losses.sum().backward()
        opt.step()
        if step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1:
            history.append(float(losses.detach().mean()))
    return history


def scaling_grid(net: MultiTaskNet, coords: Tensor, layer: int, tasks: Sequence[int],
                 scales: Sequence[float]) -> np.ndarray:
    """Renders ``[len(tasks), depth, len(scales), H*W]`` with ``s(t, layer, depth)`` scaled."""
    w = net.core.weights().detach()  # type: ignore[operator]
    out = np.zeros((len(tasks), net.core.depth, len(scales), coords.shape[0]), dtype=np.float32)
    for i, t in enumerate(tasks):
        for d in range(net.core.depth):
            for c, scale in enumerate(scales):
                wt = w[t].clone()
                wt[d, layer] *= scale
                out[i, d, c] = render(net, coords, t, wt).numpy()
    return out


def mosaic(tiles: np.ndarray, pad: int = 1) -> np.ndarray:
    """Tile images ``[rows, cols, H, W]`` into one image with ``pad`` pixels of mid-grey between."""
    rows, cols, h, w = tiles.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), 0.5, dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tiles[r, c]
    return out


def _plot_mosaic(tiles: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
                 out: Path) -> Path:
    """One imshow of the whole grid (fast), labelled along its edges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols, h, w = tiles.shape
    fig, ax = plt.subplots(figsize=(0.9 * cols + 1.2, 0.9 * rows + 0.6))
    ax.imshow(mosaic(np.clip(tiles, 0, 1)), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([c * (w + 1) + w / 2 - 0.5 for c in range(cols)], list(col_labels), fontsize=7)
    ax.set_yticks([r * (h + 1) + h / 2 - 0.5 for r in range(rows)], list(row_labels), fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out)


def _plot_grid(grid: np.ndarray, shape: tuple[int, int], tasks: Sequence[int], layer: int,
               scales: Sequence[float], out: Path) -> Path:
    nt, depth, ns = grid.shape[:3]
    tiles = grid.reshape(nt * depth, ns, *shape)
    rows = [f"task {t}, depth {d}" for t in tasks for d in range(depth)]
    return _plot_mosaic(tiles, rows, [f"s × {c:g}" for c in scales],
                        f"layer {layer}: s(t, {layer}, depth) scaled", out)


def _plot_tasks(targets: np.ndarray, preds: np.ndarray, out: Path) -> Path:
    tiles = np.stack([targets, preds])  # [2, T, H, W]
    return _plot_mosaic(tiles, ["target", "learned"], [f"task {t}" for t in range(targets.shape[0])],
                        "each task's image and its soft-ordering reconstruction", out)


def layer_behaviour(out_dir: str | Path | None = None, config: LayerBehaviourConfig | None = None,
                    images: np.ndarray | None = None) -> dict[str, Any]:
    """Train the ten generative tasks and render the scaling grids. ``images`` ``[T, H, W]`` replaces
    the MNIST "4"s (for tests). Writes ``layer_behaviour.json``, ``tasks.png`` and
    ``scaling_layer<j>.png`` (layer 0 = the paper's Table 1) into ``out_dir`` when given."""
    cfg = config or LayerBehaviourConfig()
    start = time.perf_counter()
    imgs = images if images is not None else load_fours(cfg.num_tasks, cfg.downsample, cfg.data_dir)
    T, H, W = imgs.shape
    torch.manual_seed(cfg.seed)
    coords = pixel_coords(H, W)
    targets = torch.from_numpy(np.ascontiguousarray(imgs.reshape(T, H * W), dtype=np.float32))
    net = build_net(T, cfg.width, cfg.num_layers)
    history = train(net, coords, targets, cfg)
    net.eval()
    with torch.no_grad():
        preds = torch.stack(net(coords)).clamp(0, 1)
    mse = ((preds - targets) ** 2).mean(1)
    shown = list(range(min(2, T)))
    results: dict[str, Any] = {
        "experiment": "layer-behaviour", "paper": "Sec. 5, Table 1",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "image_shape": [H, W], "loss_history": history, "mse": [float(v) for v in mse],
        "mean_mse": float(mse.mean()), "S": net.mixing_weights().tolist(),  # type: ignore[union-attr]
        "grid_tasks": shown,
    }
    grids = [scaling_grid(net, coords, j, shown, cfg.scales) for j in range(cfg.num_layers)]
    results["time_s"] = time.perf_counter() - start
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = [_plot_tasks(imgs, preds.numpy().reshape(T, H, W), out / "tasks.png")]
        files += [_plot_grid(g, (H, W), shown, j, cfg.scales, out / f"scaling_layer{j}.png")
                  for j, g in enumerate(grids)]
        (out / "layer_behaviour.json").write_text(json.dumps(results, indent=1))
        results["files"] = [str(f) for f in [out / "layer_behaviour.json", *files]]
    return results
