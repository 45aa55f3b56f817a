"""A miniature CelebA in the official on-disk format, for tests and benchmarks (Sec. 4.4)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from softorder.data.celeba import ATTR_FILE, CELEBA_ATTRIBUTES, IMAGE_DIR, PARTITION_FILE


def make_fake_celeba(root: str | os.PathLike[str], n: int = 40, size: tuple[int, int] = (178, 218),
                     seed: int = 0, split_fractions: tuple[float, float] = (0.6, 0.2)) -> Path:
    """Write ``n`` random JPEGs of ``size`` (width, height) plus both text files.

    Layout: ``<root>/celeba/{img_align_celeba/NNNNNN.jpg, list_attr_celeba.txt,
    list_eval_partition.txt}``; the first ``split_fractions[0] * n`` images are train, the
    next ``split_fractions[1] * n`` val, the rest test (CelebA's partition is contiguous too).
    Images are smooth colour blobs (upsampled noise) so JPEG sizes resemble real faces.
    Returns ``<root>/celeba``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "celeba"
    images = folder / IMAGE_DIR
    images.mkdir(parents=True, exist_ok=True)
    width, height = size
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in files:
        small = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
        img.save(images / name, quality=90)
    values = rng.choice(np.array([-1, 1]), size=(n, len(CELEBA_ATTRIBUTES)))
    attr_lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]  # official line 2 ends in a space
    attr_lines += [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, values)]
    (folder / ATTR_FILE).write_text("\n".join(attr_lines) + "\n")
    n_train, n_val = int(split_fractions[0] * n), int(split_fractions[1] * n)
    parts = [0 if i < n_train else 1 if i < n_train + n_val else 2 for i in range(n)]
    (folder / PARTITION_FILE).write_text("".join(f"{f} {p}\n" for f, p in zip(files, parts)))
    return folder
