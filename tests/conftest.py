from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Tiny models run fastest on one thread, and threads oversubscribe a 2-core CI machine.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Caches (the decoded Omniglot images) go to one temp folder per test session, never to
    ``~/.cache``; data tests narrow this to a folder per test (tests/data/conftest.py)."""
    from softorder.data.download import CACHE_DIR_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("session-cache")))
        yield
