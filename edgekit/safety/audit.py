"""Audit records: which layer flagged what, the action and the reason, never the raw sensitive text.

A record carries span offsets and a salted SHA-256 of the matched text, so two records about the same
e-mail address can be correlated (same salt) without storing the address. The salt comes from the
environment variable the policy names (``EDGEKIT_AUDIT_SALT`` by default) or, when unset, is random per
process: hashes then correlate within one run only, and cannot be reversed by hashing guesses later.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from edgekit.safety.taxonomy import Verdict

_PROCESS_SALT = os.urandom(16)


@dataclass(frozen=True)
class AuditRecord:
    time: float
    layer: str
    category: str
    action: str
    reason: str
    filter: str
    spans: tuple[tuple[int, int], ...]
    digest: str
    """Salted SHA-256 (hex, 16 chars) of the matched text of all spans, joined."""
    score: float = 1.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


class AuditSink(Protocol):
    def record(self, record: AuditRecord) -> None: ...


class AuditTrail:
    """Keeps the most recent records in memory (for tests, CLIs and apps that show them)."""

    def __init__(self, maxlen: int = 1000) -> None:
        self.records: deque[AuditRecord] = deque(maxlen=maxlen)

    def record(self, record: AuditRecord) -> None:
        self.records.append(record)


class AuditFile:
    """Appends records as JSON lines to a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, record: AuditRecord) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(record.to_json() + "\n")


def salt_from_env(name: str) -> bytes:
    value = os.environ.get(name, "")
    return value.encode() if value else _PROCESS_SALT


def make_record(verdict: Verdict, layer: str, text: str, salt: bytes) -> AuditRecord:
    matched = "\x00".join(text[s.start : s.end] for s in verdict.spans)
    digest = hashlib.sha256(salt + matched.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return AuditRecord(
        time=time.time(),
        layer=layer,
        category=verdict.category,
        action=verdict.action,
        reason=verdict.reason,
        filter=verdict.filter,
        spans=tuple((s.start, s.end) for s in verdict.spans),
        digest=digest,
        score=round(verdict.score, 4),
    )
