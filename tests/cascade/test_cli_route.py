"""route explain and trace stats as a user runs them, on the real default model (no remote)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cascade.trace import Trace, TraceStore

pytestmark = pytest.mark.model


def edgekit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "EDGEKIT_REMOTE_URL": "", **(env or {})},
    )


def test_route_explain_shows_gates_and_never_calls_the_remote(default_model_path: Path) -> None:
    # A remote URL nobody listens on: a dry run must not even try it.
    proc = edgekit(
        "route",
        "explain",
        "What dosage of ibuprofen is safe?",
        "--json",
        env={"EDGEKIT_REMOTE_URL": "http://127.0.0.1:9/v1"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    domain = next(g for g in data["gates"] if g["gate"] == "keywords:domain")
    assert domain["verdict"] == "escalate" and "dosage" in domain["reason"]
    assert data["escalation_reason"].startswith("gate keywords:domain")
    assert data["route"].startswith("would escalate")
    text = edgekit("route", "explain", "Which city is the capital of France?").stdout
    assert "local answer: '" in text and "signals: mean_prob 0." in text and "route: " in text


def test_route_explain_rejects_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text(
        '[[tiers]]\nname = "t"\nkind = "local"\nmodel = "smollm2-135m-instruct"\n'
        '[[gates]]\nkind = "keyword"\n'
    )
    proc = edgekit("route", "explain", "hi", "--policy", str(bad))
    assert proc.returncode == 2 and "unknown gate 'keyword'" in proc.stderr and "Traceback" not in proc.stderr


def test_trace_stats(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "t.jsonl")
    for route, ms, reason in [
        ("local:tiny", 100.0, None),
        ("remote:r", 900.0, "signals: low"),
        ("local:tiny", 120.0, None),
        ("degraded:tiny", 300.0, "gate keywords:domain: dosage"),
    ]:
        store.append(
            Trace(
                time=0,
                route=route,
                gates=[],
                escalation_reason=reason,
                latency_ms={"total": ms},
                remote_tokens=50 if route.startswith("remote") else 0,
                degraded_reason="remote failed: 503" if route.startswith("degraded") else None,
            )
        )
    proc = edgekit("trace", "stats", "--file", str(store.path), "--json")
    data = json.loads(proc.stdout)
    assert data["requests"] == 4 and data["routes"]["local"]["count"] == 2
    assert data["escalation_reasons"]["signals"]["count"] == 1 and data["remote_tokens"] == 50
    assert data["degraded_reasons"] == {"remote failed": {"count": 1, "rate": 0.25}}
    assert data["file"] == str(store.path)
    text = edgekit("trace", "stats", "--file", str(store.path)).stdout
    assert "4 requests" in text and "local:tiny" in text
    assert f"traces: {store.path}" in text and "remote failed" in text  # where, and why degraded


def test_eval_router_reports_a_test_only_set_with_the_shipped_sets_thresholds(tmp_path: Path) -> None:
    """--calibrate-on: the thresholds come from the shipped results' calibration split (the ones the shipped
    policies carry), and the test-only set is only reported on; no model runs."""
    from edgekit.cascade.evaluation import Item, Observation, observations_to_jsonl

    shipped = Path(__file__).resolve().parents[2] / "recipes" / "data" / "router" / "observations"
    items = [
        Item.model_validate(
            {"id": f"t{n}", "category": "table", "prompt": p, "check": {"type": "word", "values": [a]}}
            | {"test_only": True}
        )
        for n, (p, a) in enumerate([("Which team won the most, Reds or Blues?", "reds"), ("2+2?", "4")])
    ]
    (tmp_path / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in items))
    answers = [("The Reds.", 0.9, 0.6), ("5", 0.3, 0.0)]
    obs = [
        Observation(
            i.id, i.category, "test", False, True, prob, None, False, 20, prob, 0.5, 3, i.digest,
            text, "right", agreement, "other", "stop",
        )
        for i, (text, prob, agreement) in zip(items, answers, strict=True)
    ]  # fmt: skip
    (tmp_path / "obs.jsonl").write_text(observations_to_jsonl(obs))
    done = edgekit(
        "eval-router", "--data", str(tmp_path / "items.jsonl"), "--json",
        "--from-observations", str(tmp_path / "obs.jsonl"),
        "--calibrate-on", str(shipped / "cross-check.jsonl"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    accept = json.loads((shipped.parents[3] / "recipes" / "cascade" / "tiny-accept.json").read_text())
    assert report["items"]["test"] == 2 and report["items"]["calibration"] > 300
    assert report["learned"]["threshold"] == pytest.approx(accept["threshold"], abs=1e-6)
    assert report["test"]["always_local"]["quality"] == 0.5  # re-judged: "The Reds." is right, "5" is not
