"""Shared fixtures. Model tests use the real default model from models.lock, pulled once per machine
into the normal edgekit cache (like a user's first run), and loaded once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import edgekit

# CI runs the fuzz tests with a fixed seed per test, so a green run stays green; local runs explore anew.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile("ci" if os.environ.get("CI") else "default")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _repo_lock() -> Iterator[None]:
    """Tests read the repository's models.lock, whatever the working directory."""
    old = os.environ.get("EDGEKIT_LOCK")
    os.environ["EDGEKIT_LOCK"] = str(ROOT / "models.lock")
    yield
    if old is None:
        os.environ.pop("EDGEKIT_LOCK", None)
    else:
        os.environ["EDGEKIT_LOCK"] = old


@pytest.fixture(scope="session")
def default_model_path(_repo_lock: None) -> Path:
    return edgekit.pull()


@pytest.fixture(scope="session")
def default_model(default_model_path: Path) -> Iterator[edgekit.Model]:
    with edgekit.load(n_ctx=2048) as model:
        yield model


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache dir and a private copy of the lock, for tests that change either."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(cache))
    lock = tmp_path / "models.lock"
    lock.write_text((ROOT / "models.lock").read_text())
    monkeypatch.setenv("EDGEKIT_LOCK", str(lock))
    monkeypatch.delenv("EDGEKIT_OFFLINE", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def default_hf(default_model_path: Path) -> Path:
    """The default model dequantized to a Hugging Face folder: the source for compression tests (no hub).

    Kept where edgekit keeps every dequantized GGUF (``compress.hf.dequantized``: the compression cache,
    keyed by the GGUF's hash, the folder layout and the tool versions), so a second test session, a
    distillation teacher and a recipe's dequantize step reuse it; it is written atomically, so an
    interrupted run never leaves a partial folder.
    """
    from edgekit.compress.hf import dequantized
    from edgekit.config import Settings
    from edgekit.models.lock import Lockfile

    settings = Settings.from_env()
    return dequantized(default_model_path, Lockfile.load(settings.lock_path).get().sha256, settings)
