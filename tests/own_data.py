"""Small generated folders of the user's own tasks, with known rules (tests of ``tabular``,
``imagefolder`` and ``softorder predict``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

#: Fast settings for the dense nets on generated tables.
TABULAR_FAST = {"steps": 120, "eval_every": 20, "checkpoint_every": 60, "width": 16, "lr": 0.01,
                "dropout": 0.0, "threads": 1}
#: Fast settings for the conv nets on 16x16 generated images.
IMAGE_FAST = {"steps": 80, "eval_every": 20, "checkpoint_every": 40, "init": "he", "image_size": 16,
              "channels": 8, "num_layers": 2, "batch_size": 8, "lr": 0.01, "dropout": 0.0, "threads": 1}


def write_tabular(root: Path, n: int = 120, seed: int = 0) -> Path:
    """Two tasks sharing a rule on x1 + x2 and a colour: ``alpha`` (labels yes / no, some cells
    missing) and ``beta`` (numeric labels 1 / 2 / 10 by the same score, an extra column)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("alpha", "beta"):
        x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
        color = rng.choice(["red", "green", "blue"], n)
        score = x1 + x2 + np.where(color == "red", 1.0, 0.0)
        if name == "alpha":
            label = np.where(score > 0.5, "yes", "no")
        else:
            label = np.select([score < 0, score < 1.2], ["1", "2"], "10")
        cells1 = [f"{v:.3f}" for v in x1]
        cells2 = [f"{v:.3f}" for v in x2]
        colors = list(color)
        if name == "alpha":  # missing values: empty, ? and NA
            cells1[3], cells2[5], colors[7] = "", "?", "NA"
        lines = ["x1,x2,color,label"] + [",".join(r) for r in zip(cells1, cells2, colors, label)]
        (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return root


def write_graded(root: Path, n: int = 80, seed: int = 0) -> Path:
    """One task, ``graded``, whose label is ``y`` for the grades 1 and x, else ``n``: a categorical
    column of codes that pandas reads as floats when a cell is empty (issue 23)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    grades = rng.choice(["1", "2", "3", "x"], n)
    v = rng.normal(0, 1, n)
    rows = [f"{a:.3f},{g},{'y' if g in ('1', 'x') else 'n'}" for a, g in zip(v, grades)]
    (root / "graded.csv").write_text("\n".join(["v,grade,label", *rows]) + "\n")
    return root


def _image(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    a = rng.normal(60, 20, (size, size))
    k = int(rng.integers(2, size - 4))
    if kind == "horizontal":
        a[k : k + 3, :] += 150
    elif kind == "vertical":
        a[:, k : k + 3] += 150
    elif kind == "bright":
        a += 120
    return np.clip(a, 0, 255).astype(np.uint8)


def write_images(root: Path, per_class: int = 12, size: int = 16, seed: int = 0, rgb: bool = False) -> Path:
    """Two tasks: ``bars`` (horizontal / vertical bar) and ``light`` (bright / dark), PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for task, classes in (("bars", ("horizontal", "vertical")), ("light", ("bright", "dark"))):
        for c in classes:
            folder = root / task / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                a = _image(c, rng, size)
                im = Image.fromarray(np.stack([a] * 3, -1) if rgb else a)
                im.save(folder / f"{i:02d}.{'jpg' if task == 'light' and i % 2 else 'png'}")
    return root
