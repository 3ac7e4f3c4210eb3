"""Request traces: one JSON line per routed request, under the platform's user data dir.

A trace holds the route, every gate's decision and reason, the local signals, escalation or degradation
with its reason, latency per stage, tokens and cost. It never holds the prompt or answer text: only their
sizes and a short hash, so traces can be kept without storing what users wrote.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs


def default_trace_path() -> Path:
    env = os.environ.get("EDGEKIT_TRACE_FILE")
    return Path(env) if env else Path(platformdirs.user_data_dir("edgekit")) / "traces.jsonl"


@dataclass
class Trace:
    time: float
    route: str
    """'local:<tier>', 'remote:<tier>' or 'degraded:<tier>'."""
    gates: list[dict[str, str]]
    escalation_reason: str | None = None
    degraded_reason: str | None = None
    signals: dict[str, float | None] = field(default_factory=dict)
    tiers_tried: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    remote_tokens: int = 0
    cost: float = 0.0
    prompt_sha: str = ""
    trace_id: str = ""


def new_trace_id() -> str:
    return "tr-" + uuid.uuid4().hex[:16]


class TraceStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_trace_path()
        self._lock = threading.Lock()

    def append(self, trace: Trace) -> None:
        line = json.dumps(asdict(trace), separators=(",", ":")) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash: skip it, keep the rest
        return out


def stats(traces: list[dict[str, Any]]) -> dict[str, Any]:
    """Route distribution, escalation rate by reason, p50/p95 latency per route, remote spend."""
    n = len(traces)
    routes = Counter(t["route"].split(":")[0] for t in traces)
    reasons = Counter(_reason_kind(t["escalation_reason"]) for t in traces if t.get("escalation_reason"))
    degraded = Counter(_degraded_kind(t["degraded_reason"]) for t in traces if t.get("degraded_reason"))
    latency: dict[str, list[float]] = defaultdict(list)
    for t in traces:
        latency[t["route"]].append(float(t.get("latency_ms", {}).get("total", 0.0)))
    return {
        "requests": n,
        "routes": {k: {"count": v, "share": v / n} for k, v in sorted(routes.items())},
        "escalation_reasons": {k: {"count": v, "rate": v / n} for k, v in reasons.most_common()},
        "latency_ms": {
            r: {"p50": _pct(v, 50), "p95": _pct(v, 95), "count": len(v)} for r, v in sorted(latency.items())
        },
        "remote_tokens": sum(int(t.get("remote_tokens", 0)) for t in traces),
        "remote_cost": round(sum(float(t.get("cost", 0.0)) for t in traces), 6),
        "degraded": sum(degraded.values()),
        "degraded_reasons": {k: {"count": v, "rate": v / n} for k, v in degraded.most_common()},
    }


def _degraded_kind(reason: str) -> str:
    """'remote failed: the server at ... answered 503' -> 'remote failed' (details vary per request)."""
    return reason.split(":", 1)[0].strip()


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


def _pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)
