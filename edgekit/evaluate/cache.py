"""The baseline cache: a baseline's compressed distributions and task results, computed once per
(model sha256, text sha256, settings) and reused by later runs against the same baseline.

Files live under ``<EDGEKIT_CACHE_DIR>/eval/`` and are named by the sha256 of their key. Layout of a file::

    b"EKEVAL1\\n"  <8-byte little-endian header length>  <JSON header>  <payload>

The header holds the full key, the payload's length and sha256, and a ``kind`` ("drift": an ``.npz`` of
the slice's token ids and ``TopK`` arrays; "tasks": JSON of the task outcomes). A file whose magic,
key, length, checksum or arrays do not check out is reported as corrupt and recomputed, never trusted.
Writes go to a temporary file that is renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.evaluate.drift import TopK
from edgekit.files import atomic_write_bytes

MAGIC = b"EKEVAL1\n"
FORMAT = 1
_ARRAYS = ("prefix", "tokens", "ids", "logp", "log_tail", "target_lp")


class CorruptCache(Exception):
    """Internal: the cache file exists but cannot be trusted (the caller recomputes)."""


def cache_key(**parts: Any) -> dict[str, Any]:
    return {"format": FORMAT, **parts}


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class DriftEntry:
    """One slice of a baseline: its tokens (to check the candidate's tokenizer) and its top-k stats."""

    prefix: np.ndarray
    tokens: np.ndarray
    top: TopK


class BaselineCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / f"{kind}-{key_digest(key)[:40]}.bin"

    # --- drift ---------------------------------------------------------------------------------

    def save_drift(self, key: dict[str, Any], entry: DriftEntry) -> Path:
        buf = io.BytesIO()
        t = entry.top
        np.savez(
            buf,
            prefix=entry.prefix.astype(np.int32),
            tokens=entry.tokens.astype(np.int32),
            ids=t.ids.astype(np.int32),
            logp=t.logp.astype(np.float32),
            log_tail=t.log_tail.astype(np.float32),
            target_lp=t.target_lp.astype(np.float32),
        )
        return self._write("drift", key, buf.getvalue())

    def load_drift(self, key: dict[str, Any]) -> DriftEntry | None:
        """The cached entry, None when there is none; raises CorruptCache when it cannot be trusted."""
        payload = self._read("drift", key)
        if payload is None:
            return None
        try:
            with np.load(io.BytesIO(payload), allow_pickle=False) as z:
                arrays = {name: z[name] for name in _ARRAYS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
            raise CorruptCache(f"unreadable arrays ({e})") from None
        ids, logp = arrays["ids"], arrays["logp"]
        n = arrays["log_tail"].shape[0] if arrays["log_tail"].ndim == 1 else -1
        if ids.ndim != 2 or logp.shape != ids.shape or ids.shape[0] != n or arrays["target_lp"].shape != (n,):
            raise CorruptCache("arrays of inconsistent shapes")
        if not (np.isfinite(logp).all() and np.isfinite(arrays["target_lp"]).all()):
            raise CorruptCache("non-finite log-probabilities")
        top = TopK(ids, logp, arrays["log_tail"], arrays["target_lp"])
        return DriftEntry(arrays["prefix"], arrays["tokens"], top)

    # --- tasks ---------------------------------------------------------------------------------

    def save_tasks(self, key: dict[str, Any], data: dict[str, Any]) -> Path:
        return self._write("tasks", key, json.dumps(data, ensure_ascii=False).encode())

    def load_tasks(self, key: dict[str, Any]) -> dict[str, Any] | None:
        payload = self._read("tasks", key)
        if payload is None:
            return None
        try:
            data = json.loads(payload)
        except ValueError as e:
            raise CorruptCache(f"unreadable JSON ({e})") from None
        if not isinstance(data, dict) or not isinstance(data.get("outcomes"), list):
            raise CorruptCache("unexpected task data")
        return data

    # --- container -----------------------------------------------------------------------------

    def _write(self, kind: str, key: dict[str, Any], payload: bytes) -> Path:
        header = json.dumps(
            {
                "kind": kind,
                "key": key,
                "size": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest(),
            },
            sort_keys=True,
        ).encode()
        path = self.path(kind, key)
        atomic_write_bytes(path, MAGIC + struct.pack("<Q", len(header)) + header + payload)
        return path

    def _read(self, kind: str, key: dict[str, Any]) -> bytes | None:
        path = self.path(kind, key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CorruptCache(f"unreadable ({e.strerror})") from None
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 8:
            raise CorruptCache("not an edgekit eval cache file")
        (hlen,) = struct.unpack("<Q", blob[len(MAGIC) : len(MAGIC) + 8])
        start = len(MAGIC) + 8
        if hlen > len(blob) - start:
            raise CorruptCache("truncated header")
        try:
            header = json.loads(blob[start : start + hlen])
        except ValueError:
            raise CorruptCache("unreadable header") from None
        payload = blob[start + hlen :]
        if not isinstance(header, dict) or header.get("kind") != kind or header.get("key") != key:
            raise CorruptCache("written for another key")
        if header.get("size") != len(payload):
            raise CorruptCache(f"truncated ({len(payload)} of {header.get('size')} payload bytes)")
        if header.get("sha256") != hashlib.sha256(payload).hexdigest():
            raise CorruptCache("checksum mismatch")
        return payload

    def discard(self, kind: str, key: dict[str, Any]) -> None:
        self.path(kind, key).unlink(missing_ok=True)
