"""Verified downloads of the benchmark data (paper Sec. 4.1 MNIST, Sec. 4.2 UCI).

Every remote file is listed in :data:`DATASETS` with its official URL, where it goes in the
data directory, and a SHA-256 (or MD5 where only that is published). :func:`download` streams
to a temporary file in the destination folder, checks the checksum, and only then moves the
file into place with :func:`os.replace`, so an interrupted or corrupt download never leaves a
half-written file behind.

Other benchmarks (e.g. Omniglot, Sec. 4.3) add their entries to the same ``DATASETS`` dict.
A download that cannot reach its URL or write its folder raises one ``ValueError`` naming the
URL or path and the fix, and removes the folders it created.

Loaders check local files with :func:`verify_local` (registered checksum, once per process);
:func:`verification_enabled` is the one switch (``verify=False``, or ``SOFTORDER_NO_VERIFY=1``
for your own copies) that skips checksums and official counts. Caches go to :func:`cache_root`.

(Over 300 lines: the table of every remote file with its checksum, and the one streaming,
checking, resuming downloader they all go through.)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from softorder.atomic import atomic_write

DATA_DIR_ENV = "SOFTORDER_DATA_DIR"
CACHE_DIR_ENV = "SOFTORDER_CACHE_DIR"
NO_VERIFY_ENV = "SOFTORDER_NO_VERIFY"
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


def cache_root() -> Path:
    """Where derived caches go: ``$SOFTORDER_CACHE_DIR`` if set, else ``~/.cache/softorder/cache``.

    Never the data directory, which may be a read-only shared copy.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "softorder" / "cache"


# ----------------------------------------------------------------------------- verification
def verification_enabled(verify: bool | None = None) -> bool:
    """Whether loaders check checksums and official counts: the one switch.

    ``verify`` when given; else on, unless ``$SOFTORDER_NO_VERIFY`` is set to anything but
    ``""`` / ``"0"``. Format checks (columns, numbers, known classes) always run.
    """
    if verify is not None:
        return verify
    return os.environ.get(NO_VERIFY_ENV, "").strip() in ("", "0")


def fix_hint(dataset: str, root: Path) -> str:
    """How to fix a data file that fails verification: re-download, or opt out."""
    return (
        f"re-download it with `softorder data download {dataset} --root {root}`, or, to use "
        f"your own copy as it is, set {NO_VERIFY_ENV}=1 (verify=False in Python)"
    )


def _hashers(sha256: str | None, md5: str | None) -> dict[str, hashlib._Hash]:
    hashers = {}
    if sha256 is not None:
        hashers["sha256"] = hashlib.sha256()
    if md5 is not None:
        hashers["md5"] = hashlib.md5()
    return hashers


def _digests(path: Path, sha256: str | None, md5: str | None) -> dict[str, str]:
    hashers = _hashers(sha256, md5)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _compare(got: dict[str, str], sha256: str | None, md5: str | None, label: str | Path, fix: str) -> None:
    for algo, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and got[algo] != expected.lower():
            raise ValueError(
                f"checksum mismatch for {label}: expected {algo} {expected.lower()}, "
                f"got {got[algo]}; the file is corrupt or not the expected version: {fix}"
            )


def _check(path: Path, sha256: str | None, md5: str | None, label: str | Path,
           fix: str = "delete it and download again") -> None:
    _compare(_digests(path, sha256, md5), sha256, md5, label, fix)


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


def registered(rel: str) -> tuple[str, RemoteFile] | None:
    """``(dataset, entry)`` of the registry file at ``rel`` in the data dir, or None."""
    for name, files in DATASETS.items():
        for remote in files:
            if remote.path == rel:
                return name, remote
    return None


_VERIFIED: set[tuple[str, int, int]] = set()  # (path, size, mtime) hashed OK in this process


def verify_local(path: Path, root: Path, verify: bool | None = None) -> None:
    """Check the data file ``path`` (under data dir ``root``) against its registered checksum.

    Each file is hashed once per process (until its size or mtime changes). Files without a
    registry entry, and every file when :func:`verification_enabled` is off, pass unchecked.

    Raises:
        ValueError: the checksum differs (the message names the file and how to fix it).
    """
    if not verification_enabled(verify):
        return
    entry = registered(path.relative_to(root).as_posix())
    if entry is None:
        return
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return
    dataset, remote = entry
    _check(path, remote.sha256, remote.md5, path, fix_hint(dataset, root))
    _VERIFIED.add(key)


# -------------------------------------------------------------------------------- downloads
def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        if not isinstance(err.reason, BaseException):
            return str(err.reason)
        err = err.reason
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def _receiver(
    url: str, dest: Path, timeout: float, sha256: str | None, md5: str | None
) -> Callable[[BinaryIO], None]:
    """``write(out)`` for :func:`atomic_write`: stream ``url`` into ``out``, check the checksum.

    Network failures become one ``ValueError`` naming the URL and the fix; an ``OSError``
    that escapes comes from writing the local file.
    """

    def unreachable(err: BaseException) -> ValueError:
        return ValueError(
            f"could not download {url}: {_reason(err)}; check your network connection, or "
            f"download the file by hand and put it at {dest}"
        )

    def write(out: BinaryIO) -> None:
        hashers = _hashers(sha256, md5)
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)
        except (OSError, http.client.HTTPException) as err:
            raise unreachable(err) from err
        with resp:
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise unreachable(err) from err
                if not chunk:
                    break
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
        got = {name: h.hexdigest() for name, h in hashers.items()}
        fix = "delete it and download again"
        _compare(got, sha256, md5, f"{dest.name} (downloaded from {url})", fix)

    return write


def _new_folders(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; stops being possible at the first non-empty one
        with contextlib.suppress(OSError):
            folder.rmdir()


def download(
    url: str,
    dest: Path,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the checksum(s) before moving it in.

    The body is streamed to a temp file in ``dest``'s folder (:func:`softorder.atomic.atomic_write`);
    on a checksum mismatch or any error the temp file and the folders this call created are
    removed, so ``dest`` is either absent/unchanged or complete.

    Raises:
        ValueError: the downloaded bytes do not match ``sha256`` / ``md5``, the URL cannot be
            reached (network, HTTP error), or ``dest``'s folder cannot be written; the message
            names the URL or path and the fix.
    """
    dest = Path(dest)
    created = _new_folders(dest.parent)
    try:
        atomic_write(dest, _receiver(url, dest, timeout, sha256, md5))
    except OSError as err:  # network errors were turned into ValueError: this is the disk
        _remove_empty(created)
        raise ValueError(
            f"cannot write {dest}: {_reason(err)}; download into a writable data directory "
            f"(--root DIR, or set {DATA_DIR_ENV}=DIR)"
        ) from err
    except BaseException:
        _remove_empty(created)
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
