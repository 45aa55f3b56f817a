"""Atomic file writes: a temp file in the same folder, then a rename. A reader sees the old file
or the complete new one, never a half-written one (also after SIGKILL).

Files get the usual permissions, ``0o666`` less the process umask (``0644`` under umask
``022``), like any file the user creates: the temp file is opened with mode ``0o666`` so the
kernel applies the umask (``tempfile.mkstemp`` would make every file ``0600``).
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_ATTEMPTS = 100


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new, uniquely named temp file beside ``path`` (mode 0o666 less the umask)."""
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name beside {path} after {_ATTEMPTS} attempts")


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` into a temp file in the same folder, then rename:
    the file is either the old one or complete, never half-written. An exception from
    ``write`` removes the temp file and leaves ``path`` as it was."""
    path = Path(path)
    if path.is_dir():  # else the rename fails naming the temp file, a name the caller never gave
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file; name a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON: a NaN or infinity (an undefined statistic) is written as ``null``."""
    atomic_write_bytes(path, (json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n").encode())


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
