"""Throughput of the CelebA input pipeline (paper Sec. 4.4) on this machine's CPUs.

Builds a fake CelebA of official-size (178x218) JPEGs in a temp dir and times full passes
of :func:`softorder.data.celeba.celeba_loader` (decode, resize 224, center crop, ImageNet
normalisation, batching) with 0 and 2 workers. Usage::

    python scripts/bench_celeba_input.py [--images 512] [--batch-size 64] [--workers 0 2]
        [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from softorder.data.celeba import celeba_loader

_FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "celeba_fixture.py"


def _make_fake_celeba(root: Path, n: int) -> Path:
    spec = importlib.util.spec_from_file_location("celeba_fixture", _FIXTURE)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{_FIXTURE} is missing; run from a full checkout of the repo")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_fake_celeba(root, n=n, split_fractions=(1.0, 0.0))


def images_per_second(root: Path, workers: int, batch_size: int, image_size: int,
                      epochs: int) -> float:
    """Best of ``epochs`` full passes over the train split (first pass warms the workers)."""
    loader = celeba_loader(root, "train", batch_size=batch_size, num_workers=workers,
                           image_size=image_size)
    best = 0.0
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, _y in loader:
            seen += x.shape[0]
        best = max(best, seen / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads of the main process (num_workers=0 runs "
                             "its per-image ops there; DataLoader workers always use 1)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _make_fake_celeba(Path(tmp), args.images)
        print(f"fake CelebA: {args.images} JPEGs 178x218 in {time.perf_counter() - start:.1f}s")
        for workers in args.workers:
            rate = images_per_second(Path(tmp), workers, args.batch_size, args.image_size,
                                     args.epochs)
            threads = torch.get_num_threads() if workers == 0 else 1
            print(f"num_workers={workers} ({threads} torch thread(s) each): {rate:7.1f} "
                  f"images/s (batch {args.batch_size}, {args.image_size}x{args.image_size})")


if __name__ == "__main__":
    main()
