"""The one atomic writer: complete-or-absent files with the user's umask, no temp left behind."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from softorder.atomic import atomic_write, atomic_write_bytes, read_json_object, write_json


@pytest.fixture
def umask() -> Iterator[None]:
    """Run the test under umask 022 (this process only), then restore the previous one."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_umask_mode(tmp_path: Path, umask: None) -> None:
    write_json(tmp_path / "result.json", {"a": 1})
    atomic_write_bytes(tmp_path / "deep" / "checkpoint.pt", b"x")
    assert _mode(tmp_path / "result.json") == 0o644
    assert _mode(tmp_path / "deep" / "checkpoint.pt") == 0o644
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 1}
    os.umask(0o077)
    atomic_write_bytes(tmp_path / "private.bin", b"y")
    assert _mode(tmp_path / "private.bin") == 0o600
    atomic_write_bytes(tmp_path / "result.json", b"{}")  # a replaced file takes the new mode
    assert _mode(tmp_path / "result.json") == 0o600


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_bytes(b"old")

    def boom(f: BinaryIO) -> None:
        f.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]


def test_read_json_object_is_none_for_what_is_not_a_whole_object(tmp_path: Path) -> None:
    write_json(tmp_path / "ok.json", {"a": 1})
    assert read_json_object(tmp_path / "ok.json") == {"a": 1}
    (tmp_path / "cut.json").write_text('{"a": ')  # a file cut short
    (tmp_path / "list.json").write_text("[1, 2]")
    for name in ("missing.json", "cut.json", "list.json"):
        assert read_json_object(tmp_path / name) is None


def test_a_folder_in_the_way_is_named_not_the_temp_file(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as e:
        atomic_write_bytes(tmp_path, b"x")
    assert e.value.filename == str(tmp_path) and "is a folder, not a file" in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no temp file left
