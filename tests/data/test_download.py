"""Verified downloads (paper Sec. 4.1 / 4.2 data), served from a local http.server only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from softorder.data import download as dl
from softorder.data.download import (
    DATASETS,
    RemoteFile,
    default_data_dir,
    download,
    fetch,
    resolve_data_dir,
    verify_file,
)

PAYLOAD = b"softorder test payload\n" * 100


def _shared_data() -> Path | None:
    """The read-only benchmark data next to the repo (``<repo>/../shared/data``), if present."""
    here = Path(__file__).resolve()
    for root in (here.parents[3] / "shared" / "data", here.parents[2] / "shared" / "data"):
        if (root / "uci").is_dir():
            return root
    return None


class _Server:
    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                outer.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _serve(directory: Path) -> Iterator[_Server]:
    server = _Server(directory)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    src = tmp_path / "srv"
    src.mkdir()
    (src / "toy").mkdir()
    (src / "toy" / "a.bin").write_bytes(PAYLOAD)
    (src / "toy" / "b.bin").write_bytes(PAYLOAD[::-1])
    yield from ((s, src) for s in _serve(src))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_writes(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, _ = served
    dest = tmp_path / "out" / "deep" / "a.bin"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download(f"{server.url}/toy/a.bin", dest, sha256=sha, md5=md5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert _files(dest.parent) == ["a.bin"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # the user's umask, not 0600
    assert verify_file(dest, sha256=sha)
    assert verify_file(dest, md5=md5.upper())
    assert not verify_file(dest, sha256="0" * 64)
    assert not verify_file(tmp_path / "absent", sha256=sha)


def test_checksum_mismatch_leaves_nothing(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, _ = served
    dest = tmp_path / "out" / "a.bin"
    got = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(ValueError, match=r"a\.bin") as info:
        download(f"{server.url}/toy/a.bin", dest, sha256="ab" * 32)
    assert "ab" * 32 in str(info.value) and got in str(info.value)
    assert _files(dest.parent) == []
    with pytest.raises(ValueError, match="md5"):
        download(f"{server.url}/toy/a.bin", dest, md5="0" * 32)
    assert _files(dest.parent) == []


def test_http_error_leaves_nothing(served: tuple[_Server, Path], tmp_path: Path) -> None:
    server, _ = served
    dest = tmp_path / "out" / "missing.bin"
    url = f"{server.url}/toy/missing.bin"
    with pytest.raises(ValueError, match=rf"could not download {url}: HTTP 404") as info:
        download(url, dest)
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)
    assert not (tmp_path / "out").exists()  # the folder it made is gone again


def _closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_url_is_one_clean_error_and_leaves_no_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from softorder.cli import main

    monkeypatch.setitem(DATASETS, "toy", [RemoteFile("https://example.invalid/a.bin", "toy/deep/a.bin",
                                                     sha256=hashlib.sha256(PAYLOAD).hexdigest())])
    base = f"http://127.0.0.1:{_closed_port()}"
    root = tmp_path / "data"
    with pytest.raises(ValueError, match=rf"could not download {base}/toy/deep/a\.bin: .*refused.*"
                                         r"check your network") as info:
        fetch("toy", root, base_url=base)
    assert str(root / "toy" / "deep" / "a.bin") in str(info.value)  # where to put it by hand
    assert not root.exists()  # no empty folders left behind
    (tmp_path / "existing").mkdir()
    rc = main(["data", "download", "toy", "--root", str(tmp_path / "existing"), "--base-url", base])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("softorder: error: could not download") and err.count("\n") == 1
    assert _files(tmp_path / "existing") == []  # the root itself was there before: kept, empty


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder without write bits; for root (who may write anyway) mkdir in it is refused too."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_mkdir = os.mkdir

        def mkdir(path: str | os.PathLike[str], mode: int = 0o777, **kw: object) -> None:
            if Path(path).parent == folder:
                raise PermissionError(13, "Permission denied", str(path))
            real_mkdir(path, mode)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def test_read_only_root_is_one_clean_error(
    served: tuple[_Server, Path], read_only: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from softorder.cli import main

    server, _ = served
    monkeypatch.setitem(DATASETS, "toy", [RemoteFile("https://example.invalid/a.bin", "toy/a.bin",
                                                     sha256=hashlib.sha256(PAYLOAD).hexdigest())])
    with pytest.raises(ValueError, match=rf"cannot write {read_only}/toy/a\.bin: Permission denied; "
                                         r"download into a writable data directory \(--root DIR"):
        fetch("toy", read_only, base_url=server.url)
    rc = main(["data", "download", "toy", "--root", str(read_only), "--base-url", server.url])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("softorder: error: cannot write") and err.count("\n") == 1
    assert _files(read_only) == []


def test_fetch_downloads_then_skips(
    served: tuple[_Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    files = [
        RemoteFile("https://example.invalid/x/a.bin", "toy/a.bin",
                   sha256=hashlib.sha256(PAYLOAD).hexdigest()),
        RemoteFile("https://example.invalid/x/b.bin", "toy/b.bin",
                   md5=hashlib.md5(PAYLOAD[::-1]).hexdigest()),
    ]
    monkeypatch.setitem(DATASETS, "toy", files)
    root = tmp_path / "data"
    paths = fetch("toy", root, base_url=server.url + "/")
    assert paths == [root / "toy" / "a.bin", root / "toy" / "b.bin"]
    assert paths[1].read_bytes() == PAYLOAD[::-1]
    assert len(server.requests) == 2

    assert fetch("toy", root, base_url=server.url) == paths
    assert len(server.requests) == 2  # both present and verified: nothing downloaded

    paths[0].write_bytes(b"corrupt")  # a bad copy is replaced
    fetch("toy", root, base_url=server.url)
    assert paths[0].read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_fetch_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as info:
        fetch("nope", Path("unused"))
    assert "mnist" in str(info.value) and "uci" in str(info.value)


def test_registry_matches_shared_uci_files(tmp_path: Path) -> None:
    """The UCI registry's paths and SHA-256s match the verified copies in shared/data."""
    shared = _shared_data()
    if shared is None:
        pytest.skip("shared UCI data (../shared/data/uci) not available")
    assert len(DATASETS["uci"]) == 10
    for server in _serve(shared):
        paths = fetch("uci", tmp_path, base_url=server.url)
    for path in paths:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (shared / rel).read_bytes()


def test_registry_is_well_formed() -> None:
    for name, files in DATASETS.items():
        assert files, name
        for f in files:
            assert f.url.startswith("https://"), f
            assert not Path(f.path).is_absolute() and ".." not in Path(f.path).parts, f
            assert f.sha256 is not None or f.md5 is not None, f
            assert len(f.sha256 or "0" * 64) == 64 and len(f.md5 or "0" * 32) == 32, f


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(dl.DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("other") == Path("other")
    monkeypatch.delenv(dl.DATA_DIR_ENV)
    assert default_data_dir() == Path(os.path.expanduser("~")) / ".cache" / "softorder"


def test_cli_data_download_uci_from_local_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`softorder data download uci --root DIR` end to end, against 127.0.0.1 only."""
    from softorder.cli import main

    shared = _shared_data()
    if shared is None:
        pytest.skip("shared UCI data (../shared/data/uci) not available")
    for server in _serve(shared):
        rc = main(["data", "download", "uci", "--root", str(tmp_path), "--base-url", server.url])
    assert rc == 0
    assert "uci: 10 file(s) verified" in capsys.readouterr().out
    iris = "uci/iris/iris.data"
    assert (tmp_path / iris).read_bytes() == (shared / iris).read_bytes()
    assert main(["data", "download", "cifar", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_verify_local_hashes_once_and_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "toy" / "a.bin"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    monkeypatch.setitem(DATASETS, "toy", [RemoteFile("https://example.invalid/a.bin", "toy/a.bin",
                                                     sha256=hashlib.sha256(PAYLOAD).hexdigest())])
    calls = []
    real = dl._digests
    monkeypatch.setattr(dl, "_digests", lambda *a: calls.append(a) or real(*a))
    monkeypatch.delenv(dl.NO_VERIFY_ENV, raising=False)
    dl.verify_local(path, tmp_path)
    dl.verify_local(path, tmp_path)
    assert len(calls) == 1  # hashed once per process
    path.write_bytes(PAYLOAD[:-1])  # changed (size and mtime): hashed again, and refused
    with pytest.raises(ValueError, match=r"checksum mismatch for .*a\.bin.*softorder data download toy "
                                         r"--root .*SOFTORDER_NO_VERIFY=1 \(verify=False in Python\)"):
        dl.verify_local(path, tmp_path)
    dl.verify_local(path, tmp_path, verify=False)
    monkeypatch.setenv(dl.NO_VERIFY_ENV, "1")
    dl.verify_local(path, tmp_path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        dl.verify_local(path, tmp_path, verify=True)  # an explicit verify=True beats the variable
    (tmp_path / "other.bin").write_bytes(b"")
    dl.verify_local(tmp_path / "other.bin", tmp_path, verify=True)  # not registered: unchecked
    for value, enabled in (("1", False), ("yes", False), ("0", True), ("", True)):
        monkeypatch.setenv(dl.NO_VERIFY_ENV, value)
        assert dl.verification_enabled() is enabled and dl.verification_enabled(True)
