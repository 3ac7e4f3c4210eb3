"""Gates: thresholds from the suite checked against the measured metrics, one verdict per gate.

A gate named ``max_X`` passes when metric ``X`` <= threshold, ``min_X`` when ``X`` >= threshold.
Drift gates are checked for every slice and for "all" slices together; task and speed gates once:

| gate | metric |
|---|---|
| max_mean_kld, max_median_kld, max_p90_kld, max_p99_kld, max_max_kld | KL divergence statistics (nats) |
| min_top1 | share of positions where both models rank the same token first |
| max_top_p_rms | RMS change in the probability of the baseline's top token |
| max_ppl_ratio | candidate perplexity / baseline perplexity |
| min_json_validity | candidate's JSON-schema validity rate |
| max_json_validity_drop | baseline's validity rate - candidate's |
| max_refusal_drift | largest absolute change of the two refusal rates (should-refuse, should-comply) |
| max_exact_match_drop | baseline's exact-match rate - candidate's |
| min_speed_ratio | candidate generation tok/s / baseline's |
| max_size_ratio | candidate file size / baseline's |

A gate whose metric was not measured (tasks or speed turned off, a task group with no prompts) is
reported as skipped and does not fail the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgekit.evaluate.drift import DriftSummary
from edgekit.evaluate.speed import Speed
from edgekit.evaluate.suite import DRIFT_GATES, SPEED_GATES, TASK_GATES, Suite
from edgekit.evaluate.tasks import TaskScores


@dataclass(frozen=True)
class GateResult:
    scope: str
    """"all", a slice name, "tasks" or "speed"."""
    gate: str
    threshold: float
    value: float | None
    """None when the metric was not measured (the gate is skipped)."""

    @property
    def name(self) -> str:
        kind = self.scope if self.scope in ("tasks", "speed") else f"drift.{self.scope}"
        return f"{kind}.{self.gate}"

    @property
    def metric(self) -> str:
        return self.gate[4:]

    @property
    def is_max(self) -> bool:
        return self.gate.startswith("max_")

    @property
    def status(self) -> str:
        if self.value is None:
            return "skipped"
        if math.isnan(self.value):
            return "fail"
        ok = self.value <= self.threshold if self.is_max else self.value >= self.threshold
        return "pass" if ok else "fail"

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    @property
    def margin(self) -> float | None:
        """How far inside (positive) or outside (negative) the threshold the value is."""
        if self.value is None:
            return None
        return self.threshold - self.value if self.is_max else self.value - self.threshold

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} not measured"
        op = (
            ("<=" if self.status == "pass" else ">")
            if self.is_max
            else (">=" if self.status == "pass" else "<")
        )
        text = f"{self.metric} {fmt(self.value)} {op} {fmt(self.threshold)}"
        if self.status == "fail" and self.margin is not None and not math.isnan(self.margin):
            text += f" ({'over' if self.is_max else 'under'} by {fmt(abs(self.margin))})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "gate": self.gate,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "status": self.status,
            "margin": self.margin,
        }


def fmt(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


def check(
    suite: Suite,
    drift: Mapping[str, DriftSummary],
    tasks: tuple[TaskScores, TaskScores] | None,
    speed: tuple[Speed, Speed],
) -> list[GateResult]:
    """Verdicts for every gate set in the suite; ``drift`` maps "all" and each slice to its summary."""
    results = [
        GateResult("all", g, t, drift["all"].metric(g[4:]))
        for g, t in suite.gates.items()
        if g in DRIFT_GATES
    ]
    for s in suite.slices:
        results += [GateResult(s.name, g, t, drift[s.name].metric(g[4:])) for g, t in s.gates.items()]
    task_values = _task_metrics(tasks)
    results += [
        GateResult("tasks", g, t, task_values.get(g)) for g, t in suite.gates.items() if g in TASK_GATES
    ]
    speed_values = _speed_metrics(speed)
    results += [
        GateResult("speed", g, t, speed_values.get(g)) for g, t in suite.gates.items() if g in SPEED_GATES
    ]
    return results


def _drop(base: float | None, cand: float | None) -> float | None:
    return None if base is None or cand is None else base - cand


def _task_metrics(tasks: tuple[TaskScores, TaskScores] | None) -> dict[str, float | None]:
    if tasks is None:
        return {}
    b, c = tasks
    drifts = [
        abs(x - y)
        for x, y in (
            (b.refusal_rate_refuse, c.refusal_rate_refuse),
            (b.refusal_rate_comply, c.refusal_rate_comply),
        )
        if x is not None and y is not None
    ]
    return {
        "min_json_validity": c.json_validity,
        "max_json_validity_drop": _drop(b.json_validity, c.json_validity),
        "max_refusal_drift": max(drifts) if drifts else None,
        "max_exact_match_drop": _drop(b.exact_match, c.exact_match),
    }


def _speed_metrics(speed: tuple[Speed, Speed]) -> dict[str, float | None]:
    b, c = speed
    ratio = c.gen_tok_s / b.gen_tok_s if b.gen_tok_s and c.gen_tok_s is not None else None
    return {
        "min_speed_ratio": ratio,
        "max_size_ratio": c.size_bytes / b.size_bytes if b.size_bytes else None,
    }
