"""Content hashes for files and folders, and a memo so verified files are not re-hashed on every load.

A folder's hash is the sha256 of its manifest: one line ``<sha256>  <relative/path>`` per file, sorted by
path, joined with newlines. The memo remembers (size, mtime_ns) -> sha256 per absolute path; any change
to either forces a re-hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

ProgressFn = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): the library reports, the CLI renders."""

CHUNK = 1 << 20


def _noop(stage: str, done: int, total: int | None) -> None:
    return None


def file_sha256(path: Path, progress: ProgressFn = _noop, stage: str = "hash") -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            done += len(block)
            progress(stage, done, total)
    return h.hexdigest()


def tree_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def tree_sha256(root: Path, progress: ProgressFn = _noop, stage: str = "hash") -> str:
    lines = [f"{file_sha256(p, progress, stage)}  {p.relative_to(root).as_posix()}" for p in tree_files(root)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def content_sha256(path: Path, progress: ProgressFn = _noop, stage: str = "hash") -> str:
    return tree_sha256(path, progress, stage) if path.is_dir() else file_sha256(path, progress, stage)


def content_size(path: Path) -> int:
    return sum(p.stat().st_size for p in tree_files(path)) if path.is_dir() else path.stat().st_size


def _stamp(path: Path) -> tuple[int, int]:
    if path.is_dir():
        files = tree_files(path)
        return sum(p.stat().st_size for p in files), max((p.stat().st_mtime_ns for p in files), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class VerifyMemo:
    """JSON file in the cache: {abs_path: {size, mtime_ns, sha256}}. Written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, int | str]]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def known(self, path: Path, sha256: str) -> bool:
        rec = self._read().get(str(path.resolve()))
        if not rec or rec.get("sha256") != sha256:
            return False
        size, mtime = _stamp(path)
        return rec.get("size") == size and rec.get("mtime_ns") == mtime

    def lookup(self, path: Path) -> str | None:
        """The remembered sha256 of ``path`` while its size and mtime are unchanged, else None."""
        rec = self._read().get(str(path.resolve()))
        if not rec or not isinstance(rec.get("sha256"), str):
            return None
        size, mtime = _stamp(path)
        return str(rec["sha256"]) if rec.get("size") == size and rec.get("mtime_ns") == mtime else None

    def remember(self, path: Path, sha256: str) -> None:
        data = self._read()
        size, mtime = _stamp(path)
        data[str(path.resolve())] = {"size": size, "mtime_ns": mtime, "sha256": sha256}
        self._write(data)

    def forget(self, path: Path) -> None:
        data = self._read()
        if data.pop(str(path.resolve()), None) is not None:
            self._write(data)

    def _write(self, data: dict[str, dict[str, int | str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
