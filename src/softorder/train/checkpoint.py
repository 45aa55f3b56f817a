"""Atomic checkpoints and JSON files: write to a temp file in the same folder, then rename.

A checkpoint holds the model, optimizer, step, best-on-validation weights, sampler and global RNG
states and the config, so a resumed run continues bit-for-bit on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from softorder.atomic import atomic_write, atomic_write_bytes, write_json
from softorder.train.rundir import RunDir

__all__ = ["atomic_write", "atomic_write_bytes", "load_checkpoint", "save_checkpoint", "write_json"]

CHECKPOINT = RunDir.CHECKPOINT


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: nothing to resume (start the run without --resume)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / corrupt file
        raise ValueError(f"checkpoint {path} is unreadable ({e}); delete it to start over") from e
