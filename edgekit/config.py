"""Settings and paths, read from ``EDGEKIT_*`` environment variables with platformdirs defaults.

| variable | meaning | default |
|---|---|---|
| EDGEKIT_CACHE_DIR | where pulled models live | platformdirs user cache dir / models |
| EDGEKIT_LOCK | the models.lock to use | ./models.lock if present, else the one shipped with edgekit |
| EDGEKIT_OFFLINE | 1: never touch the network | 0 |
| EDGEKIT_DEBUG | 1: show tracebacks in the CLI | 0 |
| EDGEKIT_THREADS | CPU threads for local models, fixed | one per free core (half the CPUs above 4) |
| EDGEKIT_HF_ENDPOINT | Hugging Face hub base URL (HF_ENDPOINT also works) | https://huggingface.co |
| EDGEKIT_REMOTE_URL | base URL of the OpenAI-compatible remote (..../v1) | unset |
| EDGEKIT_REMOTE_API_KEY_ENV | name of the variable holding the remote API key | EDGEKIT_REMOTE_API_KEY |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import platformdirs

from edgekit.errors import InputError

APP_NAME = "edgekit"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _positive_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{name}={raw!r} is not a positive integer", f"Unset {name} or set it to 1 or more.")
    return int(raw)


def default_threads() -> int:
    """CPU threads for local models when neither the caller nor EDGEKIT_THREADS says: physical-ish cores,
    since llama.cpp decodes fastest with one thread per core, not per SMT sibling."""
    n = os.cpu_count() or 1
    return max(1, n // 2) if n > 4 else n


def shipped_lock_path() -> Path:
    """The models.lock inside the installed package (absent in an editable install)."""
    return Path(str(resources.files("edgekit") / "_data" / "models.lock"))


def default_lock_path() -> Path:
    """./models.lock in the working directory wins (a project pins its own models); else the shipped one."""
    local = Path.cwd() / "models.lock"
    if local.is_file():
        return local
    return package_lock_path()


def package_lock_path() -> Path:
    """The lock that belongs to edgekit itself: the shipped one, or in an editable install of a source
    checkout the one at the repository root."""
    shipped = shipped_lock_path()
    if shipped.is_file():
        return shipped
    return Path(__file__).resolve().parent.parent / "models.lock"


def writable_lock_path(lock_path: Path) -> Path:
    """Where entries for ``lock_path`` are written: edgekit's own lock (the shipped one, or a source
    checkout's in an editable install) belongs to the package (an upgrade would drop what was added to
    it, and a checkout would get a user's absolute paths), so new entries go to ./models.lock of the
    working directory, started as its copy."""
    own = package_lock_path()
    local = Path.cwd() / "models.lock"
    if Path(lock_path).resolve() != own.resolve() or local.resolve() == own.resolve():
        return Path(lock_path)  # a project's own lock (or, inside the checkout, the checkout's)
    if not local.exists():
        local.write_text(own.read_text(encoding="utf-8"), encoding="utf-8")
    return local


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    lock_path: Path
    offline: bool
    debug: bool
    hf_endpoint: str
    remote_url: str | None
    remote_api_key_env: str
    threads: int | None = None

    def with_lock(self, lock_path: str | Path | None) -> Settings:
        """These settings with ``lock_path`` as the lock, when one is given."""
        return self if lock_path is None else replace(self, lock_path=Path(lock_path))

    @classmethod
    def from_env(cls) -> Settings:
        cache = os.environ.get("EDGEKIT_CACHE_DIR")
        lock = os.environ.get("EDGEKIT_LOCK")
        return cls(
            cache_dir=Path(cache) if cache else Path(platformdirs.user_cache_dir(APP_NAME)) / "models",
            lock_path=Path(lock) if lock else default_lock_path(),
            offline=_flag("EDGEKIT_OFFLINE"),
            debug=_flag("EDGEKIT_DEBUG"),
            hf_endpoint=(
                os.environ.get("EDGEKIT_HF_ENDPOINT")
                or os.environ.get("HF_ENDPOINT")
                or "https://huggingface.co"
            ).rstrip("/"),
            remote_url=os.environ.get("EDGEKIT_REMOTE_URL") or None,
            remote_api_key_env=os.environ.get("EDGEKIT_REMOTE_API_KEY_ENV") or "EDGEKIT_REMOTE_API_KEY",
            threads=_positive_int("EDGEKIT_THREADS"),
        )
