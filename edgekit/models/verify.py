"""A memo so verified files are not re-hashed on every load (the hashes themselves: ``edgekit.files``).

The memo remembers (size, mtime_ns) -> sha256 per absolute path; any change to either forces a re-hash.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.files import atomic_replace, tree_files


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
        atomic_replace(self.path, json.dumps(data, indent=1, sort_keys=True).encode())
