"""The eval report: everything one run measured, and its JSON form (a stable, versioned schema).

JSON schema, version 1 (``schema_version``; fields are only ever added within a version)::

    {
      "schema": "edgekit.eval", "schema_version": 1, "edgekit_version": "0.1.0",
      "created_at": "2025-01-31T12:00:00+00:00",
      "passed": true,                       # every gate passed or was skipped
      "suite": {"path": "...", "description": "...", "top_k": 1024},
      "baseline":  {"name", "path", "sha256", "format": "gguf"|"onnx", "backend", "size_bytes"},
      "candidate": {... same ...},
      "drift": {
        "all": DRIFT,                       # every slice together
        "slices": {"prose": DRIFT + {"text_tokens", "window_tokens", "kld_method", "baseline_cache"}, ...},
        "kld_histogram": {"edges": [...], "counts": [...]}   # log10-spaced bins over all positions
      },
      "tasks": null | {"baseline": TASKS, "candidate": TASKS, "delta": {rate: candidate - baseline},
                       "baseline_cache": "hit"|"miss"|"off"|"recomputed (...)"},
      "speed": {"baseline": SPEED, "candidate": SPEED},
      "gates": [{"name": "drift.all.max_mean_kld", "scope", "gate", "metric", "value", "threshold",
                 "status": "pass"|"fail"|"skipped", "margin"}],   # margin > 0: inside the threshold
      "summary": {"gates", "passed", "failed", "skipped"},
      "timings_s": {"load", "tokenize", "score", "tasks", "speed", "total"}
    }

    DRIFT = {"tokens", "mean_kld", "median_kld", "p90_kld", "p99_kld", "max_kld", "top1", "top_p_rms",
             "ppl_baseline", "ppl_candidate", "ppl_ratio"}
    TASKS = {"json_validity", "refusal_rate_refuse", "refusal_rate_comply", "exact_match",
             "outcomes": [{"group", "prompt", "reply", "passed"}]}        # rates are null without prompts
    SPEED = {"gen_tok_s", "ttft_ms", "size_bytes", "scoring_tok_s"}

``kld_method`` is "exact" (both models scored in this run, full vocabulary) or "topk" (against the cached
baseline: top-k plus a tail bucket, a close lower bound; see ``edgekit.evaluate.drift``).
Non-finite numbers are written as null.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.evaluate.drift import DriftSummary, PositionStats
from edgekit.evaluate.gates import GateResult
from edgekit.evaluate.speed import Speed
from edgekit.evaluate.tasks import TaskScores

SCHEMA = "edgekit.eval"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ModelInfo:
    role: str
    name: str
    path: Path
    sha256: str
    format: str
    size_bytes: int
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "format": self.format,
            "backend": self.backend,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True)
class SliceResult:
    name: str
    text_tokens: int
    window_tokens: int
    kld_method: str
    baseline_cache: str
    summary: DriftSummary
    stats: PositionStats = field(repr=False)


@dataclass(frozen=True)
class EvalReport:
    """What ``run_eval`` returns. ``passed`` is the verdict; ``failures`` the gates that failed."""

    baseline: ModelInfo
    candidate: ModelInfo
    slices: tuple[SliceResult, ...]
    overall: DriftSummary
    tasks: tuple[TaskScores, TaskScores] | None
    tasks_cache: str
    speed: tuple[Speed, Speed]
    gates: tuple[GateResult, ...]
    timings: dict[str, float]
    created_at: str
    suite_path: Path | None = None
    suite_description: str = ""
    top_k: int = 1024
    edgekit_version: str = ""

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failures(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "fail"]

    def gates_for(self, scope: str) -> list[tuple[str, float]]:
        """(gate, threshold) pairs checked for a scope ("all", a slice, "tasks", "speed")."""
        return [(g.gate, g.threshold) for g in self.gates if g.scope == scope]

    def slice(self, name: str) -> SliceResult:
        return next(s for s in self.slices if s.name == name)

    def all_stats(self) -> PositionStats:
        return PositionStats.concat([s.stats for s in self.slices])

    def to_dict(self) -> dict[str, Any]:
        counts = {k: sum(1 for g in self.gates if g.status == k) for k in ("pass", "fail", "skipped")}
        data: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "edgekit_version": self.edgekit_version,
            "created_at": self.created_at,
            "passed": self.passed,
            "suite": {
                "path": str(self.suite_path) if self.suite_path else None,
                "description": self.suite_description,
                "top_k": self.top_k,
            },
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "drift": {
                "all": asdict(self.overall),
                "slices": {
                    s.name: {
                        **asdict(s.summary),
                        "text_tokens": s.text_tokens,
                        "window_tokens": s.window_tokens,
                        "kld_method": s.kld_method,
                        "baseline_cache": s.baseline_cache,
                    }
                    for s in self.slices
                },
                "kld_histogram": kld_histogram(self.all_stats().kld),
            },
            "tasks": self._tasks_dict(),
            "speed": {"baseline": self.speed[0].to_dict(), "candidate": self.speed[1].to_dict()},
            "gates": [g.to_dict() for g in self.gates],
            "summary": {
                "gates": len(self.gates),
                "passed": counts["pass"],
                "failed": counts["fail"],
                "skipped": counts["skipped"],
            },
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
        return _finite(data)

    def _tasks_dict(self) -> dict[str, Any] | None:
        if self.tasks is None:
            return None
        b, c = (t.to_dict() for t in self.tasks)
        delta = {
            k: (c[k] - b[k] if b[k] is not None and c[k] is not None else None)
            for k in ("json_validity", "refusal_rate_refuse", "refusal_rate_comply", "exact_match")
        }
        return {"baseline": b, "candidate": c, "delta": delta, "baseline_cache": self.tasks_cache}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)


def kld_histogram(kld: np.ndarray, bins: int = 24) -> dict[str, list[float] | list[int]]:
    """Counts over log10-spaced bins from 1e-6 to 10 nats; values below 1e-6 land in the first bin."""
    edges = np.logspace(-6, 1, bins + 1)
    counts, _ = np.histogram(np.clip(kld, edges[0], edges[-1]), bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
