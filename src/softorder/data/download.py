"""Verified downloads of the benchmark data (paper Sec. 4.1 MNIST, Sec. 4.2 UCI).

Every remote file is listed in :data:`DATASETS` with its official URL, where it goes in the
data directory, and a SHA-256 (or MD5 where only that is published). :func:`download` streams
to a temporary file in the destination folder, checks the checksum, and only then moves the
file into place with :func:`os.replace`, so an interrupted or corrupt download never leaves a
half-written file behind.

Other benchmarks (e.g. Omniglot, Sec. 4.3) add their entries to the same ``DATASETS`` dict.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SOFTORDER_DATA_DIR"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its URL, its place in the data dir, and its checksum.

    ``path`` is relative to the data directory (e.g. ``uci/iris/iris.data``).
    """

    url: str
    path: str
    sha256: str | None = None
    md5: str | None = None


_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
# Pima is no longer hosted by UCI (withdrawn); this widely used mirror serves the same bytes
# (SHA-256 below matches the published pin for the old UCI file).
_PIMA_MIRROR = (
    "https://raw.githubusercontent.com/jbrownlee/Datasets/master/pima-indians-diabetes.data.csv"
)
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist"

_OMNIGLOT = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"

DATASETS: dict[str, list[RemoteFile]] = {
    "uci": [
        RemoteFile(
            f"{_UCI}/statlog/australian/australian.dat",
            "uci/australian/australian.dat",
            sha256="3abe5af151afa50b999a9ba21cbc884e80d80a4050b716cf88b34a2e6ecb731c",
        ),
        RemoteFile(
            f"{_UCI}/breast-cancer-wisconsin/wdbc.data",
            "uci/wdbc/wdbc.data",
            sha256="d606af411f3e5be8a317a5a8b652b425aaf0ff38ca683d5327ffff94c3695f4a",
        ),
        RemoteFile(
            f"{_UCI}/ecoli/ecoli.data",
            "uci/ecoli/ecoli.data",
            sha256="008bd8fbb1d8b34040c3c8c4e987cac2a7ebf116e008b140cc6441be5261ba1d",
        ),
        RemoteFile(
            f"{_UCI}/statlog/german/german.data-numeric",
            "uci/german/german.data-numeric",
            sha256="2752b044394958ab6dd193a0b56ca0f0b3a2d8bc7cb8c008e35a5e84bbec02f8",
        ),
        RemoteFile(
            f"{_UCI}/heart-disease/processed.cleveland.data",
            "uci/heart_cleveland/processed.cleveland.data",
            sha256="a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8",
        ),
        RemoteFile(
            f"{_UCI}/hepatitis/hepatitis.data",
            "uci/hepatitis/hepatitis.data",
            sha256="9971f9d18abb4fc9dd6749eefb0f864b36fa7bdd59f54188c0b148a5c28214bc",
        ),
        RemoteFile(
            f"{_UCI}/iris/iris.data",
            "uci/iris/iris.data",
            sha256="6f608b71a7317216319b4d27b4d9bc84e6abd734eda7872b71a458569e2656c0",
        ),
        RemoteFile(
            _PIMA_MIRROR,
            "uci/pima/pima-indians-diabetes.data",
            sha256="06f5b7c2cd7bca686fda4f92eab5f61e7ff6426a9acefa2e3dda04fc54293cf5",
        ),
        RemoteFile(
            f"{_UCI}/wine/wine.data",
            "uci/wine/wine.data",
            sha256="6be6b1203f3d51df0b553a70e57b8a723cd405683958204f96d23d7cd6aea659",
        ),
        RemoteFile(
            f"{_UCI}/yeast/yeast.data",
            "uci/yeast/yeast.data",
            sha256="7cf61776fc04f527f93bf57a327b863893a1225d82df02d457e8950173218258",
        ),
    ],
    "mnist": [
        RemoteFile(
            f"{_MNIST}/train-images-idx3-ubyte.gz",
            "mnist/train-images-idx3-ubyte.gz",
            md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        RemoteFile(
            f"{_MNIST}/train-labels-idx1-ubyte.gz",
            "mnist/train-labels-idx1-ubyte.gz",
            md5="d53e105ee54ea40749a09fcbcd1e9432",
        ),
        RemoteFile(
            f"{_MNIST}/t10k-images-idx3-ubyte.gz",
            "mnist/t10k-images-idx3-ubyte.gz",
            md5="9fb629c4189551a2d022fa330f9573f3",
        ),
        RemoteFile(
            f"{_MNIST}/t10k-labels-idx1-ubyte.gz",
            "mnist/t10k-labels-idx1-ubyte.gz",
            md5="ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ],
    # Omniglot (Lake et al. 2015), the official archives with their published MD5s (Sec. 4.3).
    "omniglot": [
        RemoteFile(
            f"{_OMNIGLOT}/images_background.zip",
            "omniglot/images_background.zip",
            md5="68d2efa1b9178cc56df9314c21c6e718",
        ),
        RemoteFile(
            f"{_OMNIGLOT}/images_evaluation.zip",
            "omniglot/images_evaluation.zip",
            md5="6b91aef0f799c5bb55b94e3f2daec811",
        ),
    ],
}


def default_data_dir() -> Path:
    """The data directory: ``$SOFTORDER_DATA_DIR`` if set, else ``~/.cache/softorder``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "softorder"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """``data_dir`` as an expanded :class:`Path`, or :func:`default_data_dir` when ``None``."""
    if data_dir is None or (isinstance(data_dir, str) and not data_dir):
        return default_data_dir()
    return Path(data_dir).expanduser()


def _digests(path: Path, sha256: str | None, md5: str | None) -> dict[str, str]:
    hashers = {}
    if sha256 is not None:
        hashers["sha256"] = hashlib.sha256()
    if md5 is not None:
        hashers["md5"] = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _check(path: Path, sha256: str | None, md5: str | None, label: str | Path) -> None:
    got = _digests(path, sha256, md5)
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and got[algo] != expected.lower():
            raise ValueError(
                f"checksum mismatch for {label}: expected {algo} {expected.lower()}, "
                f"got {got[algo]}; the file is corrupt or not the expected version, "
                "delete it and download again"
            )


def verify_file(path: str | Path, sha256: str | None = None, md5: str | None = None) -> bool:
    """Whether ``path`` exists and matches every given checksum (no checksum: exists only)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        _check(path, sha256, md5, path)
    except ValueError:
        return False
    return True


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the checksum(s) before moving it in.

    The body is streamed to a temp file in ``dest``'s folder; on a checksum mismatch or any
    error the temp file is deleted, so ``dest`` is either absent/unchanged or complete.

    Raises:
        ValueError: the downloaded bytes do not match ``sha256`` / ``md5``.
        OSError: network or file-system failure (``urllib.error.URLError`` is an ``OSError``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, _CHUNK)
        _check(tmp, sha256, md5, f"{dest.name} (downloaded from {url})")
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dest


def fetch(name: str, root: str | Path, base_url: str | None = None) -> list[Path]:
    """Download every file of dataset ``name`` into ``root``; return the local paths.

    Files already present with the right checksum are skipped. ``base_url`` replaces the
    official URLs by ``<base_url>/<path in the data dir>`` (e.g. ``<base_url>/uci/iris/iris.data``),
    i.e. a mirror laid out like the data directory, such as a local test server.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    root = Path(root).expanduser()
    paths = []
    for remote in DATASETS[name]:
        dest = root / remote.path
        if not verify_file(dest, remote.sha256, remote.md5):
            url = remote.url if base_url is None else f"{base_url.rstrip('/')}/{remote.path}"
            download(url, dest, sha256=remote.sha256, md5=remote.md5)
        paths.append(dest)
    return paths
