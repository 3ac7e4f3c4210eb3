"""A memo so verified files are not re-hashed on every load (the hashes themselves: ``edgekit.files``).

The memo remembers (size, mtime_ns, ctime_ns) -> sha256 per absolute path; any change forces a
re-hash. The change time is what catches an edit whose mtime was put back: the kernel sets ctime on every
write, rename and ``utime``, and no call sets it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.files import ProgressFn, atomic_replace, content_sha256, file_stamp, no_progress


class VerifyMemo:
    """JSON file in the cache: {abs_path: {size, mtime_ns, ctime_ns, sha256}}. Written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def known(self, path: Path, sha256: str) -> bool:
        rec = self._read().get(str(path.resolve()))
        if not rec or rec.get("sha256") != sha256:
            return False
        return _unchanged(rec, path)

    def lookup(self, path: Path) -> str | None:
        """The remembered sha256 of ``path`` while its stamp is unchanged, else None."""
        rec = self._read().get(str(path.resolve()))
        if not rec or not isinstance(rec.get("sha256"), str):
            return None
        return str(rec["sha256"]) if _unchanged(rec, path) else None

    def remember(self, path: Path, sha256: str) -> None:
        data = self._read()
        data[str(path.resolve())] = {**file_stamp(path), "sha256": sha256}
        self._write(data)

    def forget(self, path: Path) -> None:
        data = self._read()
        if data.pop(str(path.resolve()), None) is not None:
            self._write(data)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        atomic_replace(self.path, json.dumps(data, indent=1, sort_keys=True).encode())


def _unchanged(rec: dict[str, Any], path: Path) -> bool:
    return all(rec.get(k) == v for k, v in file_stamp(path).items())


def remembered_sha256(
    path: Path, cache_dir: Path, progress: ProgressFn = no_progress, stage: str = "hash"
) -> str:
    """``content_sha256`` of ``path``, remembered in ``cache_dir/hashes.json`` until the file changes."""
    memo = VerifyMemo(cache_dir / "hashes.json")
    sha = memo.lookup(path)
    if sha is None:
        sha = content_sha256(path, progress, stage=stage)
        memo.remember(path, sha)
    return sha
