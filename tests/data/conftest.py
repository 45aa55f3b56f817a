"""Data tests write caches only into a temp ``$SOFTORDER_CACHE_DIR``, never ``~/.cache``, and
verify by default whatever the caller's ``$SOFTORDER_NO_VERIFY`` says."""

from __future__ import annotations

import pytest

from softorder.data.download import CACHE_DIR_ENV, NO_VERIFY_ENV


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv(NO_VERIFY_ENV, raising=False)
