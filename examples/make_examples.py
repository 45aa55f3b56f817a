"""Write the small example folders that docs/your-data.md uses (deterministic; run from anywhere).

``examples/tabular/``: three related CSV tasks with a known rule, one file per task, and a
``tasks.yaml`` naming the label column of the task whose column is not ``label``;
``examples/new_fruit.csv``: new rows of the ``fruit`` task to predict (no label, an extra column).
``examples/images/``: two image tasks laid out as ``<task>/<class>/*.png`` (32×32 grayscale).

    python examples/make_examples.py            # rewrites both folders in place
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _cells(values: np.ndarray, rng: np.random.Generator, missing: float, digits: int = 2) -> list[str]:
    """Numbers as text, a ``missing`` fraction of them left empty or ``?``."""
    out = [f"{v:.{digits}f}" for v in values]
    for i in np.flatnonzero(rng.random(len(out)) < missing):
        out[i] = "" if i % 2 else "?"
    return out


def _write(path: Path, columns: dict[str, list[str]]) -> None:
    names = list(columns)
    rows = zip(*columns.values())
    path.write_text(",".join(names) + "\n" + "".join(",".join(r) + "\n" for r in rows))


def fruit(rng: np.random.Generator, n: int, labelled: bool = True) -> dict[str, list[str]]:
    """Ripeness from sugar, firmness and variety: three classes."""
    variety = rng.choice(["apple", "pear", "plum"], n)
    sugar, firmness = rng.normal(12, 3, n), rng.normal(6, 2, n)
    score = sugar - 1.5 * firmness + np.select([variety == "pear", variety == "plum"], [1.5, 3.0], 0.0)
    score += rng.normal(0, 1.0, n)
    cols = {"sugar": _cells(sugar, rng, 0.03), "firmness": _cells(firmness, rng, 0.03),
            "variety": list(variety)}
    if labelled:
        cols["label"] = list(np.select([score < 0, score < 5], ["unripe", "ripe"], "overripe"))
    return cols


def plants(rng: np.random.Generator, n: int) -> dict[str, list[str]]:
    """Whether a plant thrives, from water, light and soil."""
    soil = rng.choice(["clay", "loam", "sand"], n)
    water, light = rng.uniform(0, 10, n), rng.uniform(0, 10, n)
    score = water + light - 10 + np.select([soil == "loam", soil == "sand"], [1.5, -1.5], 0.0)
    score += rng.normal(0, 1.0, n)
    return {"water": _cells(water, rng, 0.02), "light": _cells(light, rng, 0.0), "soil": list(soil),
            "label": list(np.where(score > 0, "thrives", "wilts"))}


def machines(rng: np.random.Generator, n: int) -> dict[str, list[str]]:
    """A machine's state (ok / fault) from temperature, vibration and model; label ``outcome``."""
    model = rng.choice(["A", "B", "C"], n)
    temperature, vibration = rng.normal(60, 10, n), rng.gamma(2.0, 1.0, n)
    score = (temperature - 60) / 10 + vibration - 2 + np.where(model == "C", 1.0, 0.0) + rng.normal(0, 0.7, n)
    return {"temperature": _cells(temperature, rng, 0.0, 1), "vibration": _cells(vibration, rng, 0.05),
            "model": list(model), "outcome": list(np.where(score > 0.5, "fault", "ok"))}


def write_tabular(root: Path) -> None:
    rng = np.random.default_rng(2018)
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "fruit.csv", fruit(rng, 300))
    _write(root / "plants.csv", plants(rng, 240))
    _write(root / "machines.csv", machines(rng, 200))
    (root / "tasks.yaml").write_text("# the task machines labels its rows in the column outcome, not label\n"
                                     "machines:\n  label_column: outcome\n")
    new = fruit(rng, 8, labelled=False)
    _write(root.parent / "new_fruit.csv", {"batch": [f"b{i:02d}" for i in range(8)], **new})


def _shape(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One noisy 32×32 drawing of a circle, a square or a triangle (ink bright)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cy, cx, r = rng.uniform(12, 20), rng.uniform(12, 20), rng.uniform(6, 10)
    if kind == "circle":
        ink = np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.5
    elif kind == "square":
        edge = np.maximum(np.abs(yy - cy), np.abs(xx - cx))
        ink = (edge < r) & (edge > r - 3)
    else:
        inside = (yy < cy + r) & (np.abs(xx - cx) < (yy - (cy - r)) / 2)
        ink = inside & ~((yy < cy + r - 3) & (np.abs(xx - cx) < (yy - (cy - r)) / 2 - 2.5))
    return _to_uint8(ink.astype(float) * 200 + rng.normal(0, 25, (size, size)))


def _stripes(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Horizontal or vertical stripes of a random period and phase."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    t = yy if kind == "horizontal" else xx
    wave = np.sin(2 * np.pi * t / rng.uniform(4, 9) + rng.uniform(0, 2 * np.pi))
    return _to_uint8(128 + 90 * wave + rng.normal(0, 30, (size, size)))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def write_images(root: Path, per_class: int = 30) -> None:
    rng = np.random.default_rng(2018)
    for task, classes, draw in (("shapes", ("circle", "square", "triangle"), _shape),
                                ("stripes", ("horizontal", "vertical"), _stripes)):
        for c in classes:
            folder = root / task / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(draw(c, rng)).save(folder / f"{c}_{i:02d}.png", optimize=True)


def main(out: Path = HERE) -> None:
    for sub in ("tabular", "images"):
        shutil.rmtree(out / sub, ignore_errors=True)
    write_tabular(out / "tabular")
    write_images(out / "images")
    print(f"wrote {out / 'tabular'}, {out / 'new_fruit.csv'} and {out / 'images'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
