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
    shadow: dict[str, Any] | None = None
    """With a shadow policy: what it would have done (``edgekit.cascade.shadow``)."""


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


def compare(traces: list[dict[str, Any]]) -> dict[str, Any]:
    """What the shadow policy recorded in these traces would have done, projected from them: its remote
    share against the actual one, requests that would switch, remote tokens (a request it would send
    remote that stayed local is charged its prompt and answer tokens), cost at the traces' own rate, and
    latency (a switch to local drops the remote stage; a switch to remote adds the median remote stage
    seen). Requests whose shadow verdict is unknown are counted and left out of the projection."""
    shadowed = [t for t in traces if t.get("shadow")]
    known = [t for t in shadowed if t["shadow"]["route"] != "unknown"]
    if not known:
        return {"requests": len(shadowed), "known": 0, "unknown": len(shadowed)}

    def wanted_remote(t: dict[str, Any]) -> bool:
        return str(t["route"]).startswith(("remote:", "degraded:"))

    def remote_stage(t: dict[str, Any]) -> float:
        return sum(float(v) for k, v in t.get("latency_ms", {}).items() if k.startswith("remote:"))

    stages = [remote_stage(t) for t in known if str(t["route"]).startswith("remote:")]
    typical_remote = statistics.median(stages) if stages else None
    spent = sum(int(t.get("remote_tokens", 0)) for t in known)
    rate = sum(float(t.get("cost", 0.0)) for t in known) / spent if spent else 0.0
    tokens, actual_ms, shadow_ms = 0, [], []
    switches: Counter[str] = Counter()
    for t in known:
        now, then = wanted_remote(t), t["shadow"]["route"] == "remote"
        total = float(t.get("latency_ms", {}).get("total", 0.0))
        actual_ms.append(total)
        if then:
            tokens += int(t.get("remote_tokens", 0)) or int(t.get("prompt_tokens", 0)) + int(
                t.get("completion_tokens", 0)
            )
        if now and not then:
            switches["to local"] += 1
            shadow_ms.append(total - remote_stage(t))
        elif then and not now:
            switches["to remote"] += 1
            if typical_remote is not None:
                shadow_ms.append(total + typical_remote)
        else:
            shadow_ms.append(total)
    n = len(known)
    return {
        "requests": len(shadowed),
        "known": n,
        "unknown": len(shadowed) - n,
        "policy": known[0]["shadow"].get("policy", ""),
        "remote_share": {
            "actual": sum(map(wanted_remote, known)) / n,
            "shadow": sum(t["shadow"]["route"] == "remote" for t in known) / n,
        },
        "switches": dict(switches),
        "remote_tokens": {"actual": spent, "shadow": tokens},
        "remote_cost": {"actual": round(rate * spent, 6), "shadow": round(rate * tokens, 6)},
        "latency_ms": {
            "actual": {"p50": _pct(actual_ms, 50), "p95": _pct(actual_ms, 95)},
            "shadow": {"p50": _pct(shadow_ms, 50), "p95": _pct(shadow_ms, 95)} if shadow_ms else None,
        },
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
