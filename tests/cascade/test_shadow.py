"""Shadow mode around the router's seams (fake models): the shadow policy's verdict goes into the trace,
nothing is generated for it, what it cannot judge is 'unknown'; trace stats --compare projects it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cascade.policy import Policy, PolicyError
from edgekit.cascade.router import Router
from edgekit.cascade.trace import TraceStore, compare

from .fakes import FakeModel

TIERS = """
[[tiers]]
name = "tiny"
kind = "local"
model = "tiny"
{accept}
[[tiers]]
name = "remote"
kind = "remote"
model = "big"
"""


def policy(tmp_path: Path, name: str, accept: str, extra: str = "") -> Policy:
    path = tmp_path / f"{name}.toml"
    path.write_text(TIERS.format(accept=accept) + extra)
    return Policy.load(path)


def test_the_shadow_verdict_is_traced_and_costs_no_generation(tmp_path: Path) -> None:
    strict = policy(tmp_path, "strict", "accept = { min_mean_prob = 0.9 }")
    lenient = policy(tmp_path, "lenient", "accept = { min_mean_prob = 0.5 }")
    tiny, remote = FakeModel(answer="Paris.", prob=0.7), FakeModel(answer="Paris!")
    traces = TraceStore(tmp_path / "traces.jsonl")
    router = Router(strict, local=[tiny], remote=remote, traces=traces, shadow=lenient)
    result = router.route("What is the capital of France?")
    assert result.route == "remote:remote"  # the router's own policy decides
    assert len(tiny.calls) == 1 and len(remote.calls) == 1  # nothing more for the shadow
    shadow = traces.read()[-1]["shadow"]
    assert shadow == {"policy": "lenient.toml", "route": "local", "detail": "local:tiny"}
    tiny.prob = 0.3
    router.route("What is the capital of France?")
    assert traces.read()[-1]["shadow"]["route"] == "remote"
    assert "mean token probability 0.300 < 0.5" in traces.read()[-1]["shadow"]["detail"]
    tiny.prob = 0.95
    assert router.route("What is the capital of France?").route == "local:tiny"
    assert traces.read()[-1]["shadow"]["route"] == "local"
    c = compare(traces.read())
    assert c["known"] == 3 and c["remote_share"] == {"actual": 2 / 3, "shadow": 1 / 3}
    assert c["switches"] == {"to local": 1}
    assert c["remote_tokens"]["shadow"] == traces.read()[1]["remote_tokens"] < c["remote_tokens"]["actual"]


def test_gates_of_the_shadow_and_what_it_cannot_judge(tmp_path: Path) -> None:
    gate = '[[gates]]\nkind = "keywords"\nlabel = "domain"\npatterns = ["dosage"]\n'
    gated = policy(tmp_path, "gated", "accept = { min_mean_prob = 0.5 }", gate)
    plain = policy(tmp_path, "plain", "accept = { min_mean_prob = 0.5 }")
    tiny, remote = FakeModel(prob=0.95), FakeModel()
    traces = TraceStore(tmp_path / "t.jsonl")
    Router(plain, local=[tiny], remote=remote, traces=traces, shadow=gated).route("What dosage is safe?")
    assert traces.read()[-1]["shadow"]["route"] == "remote"
    assert traces.read()[-1]["shadow"]["detail"].startswith("gate keywords:domain")
    # The router's gate sent it remote without a local answer: the shadow cannot judge one.
    Router(gated, local=[tiny], remote=remote, traces=traces, shadow=plain).route("What dosage is safe?")
    assert traces.read()[-1]["shadow"]["route"] == "unknown"
    # Self-consistency needs more samples than the request produced.
    sampled = policy(tmp_path, "sampled", "self_consistency = { samples = 2 }")
    calls = len(tiny.calls)
    Router(plain, local=[tiny], remote=remote, traces=traces, shadow=sampled).route("Capital of France?")
    assert traces.read()[-1]["shadow"]["route"] == "unknown" and len(tiny.calls) == calls + 1
    assert compare(traces.read())["unknown"] == 2


def test_a_shadow_on_other_models_is_refused(tmp_path: Path) -> None:
    plain = policy(tmp_path, "plain", "")
    other = Policy.parse(
        TIERS.format(accept="").replace('model = "tiny"', 'model = "other"'), tmp_path / "o.toml"
    )
    with pytest.raises(PolicyError, match="same model"):
        Router(plain, local=[FakeModel()], shadow=other)
    checked = policy(tmp_path, "checked", 'cross_check = { model = "small" }')
    with pytest.raises(PolicyError, match="cross-check model"):
        Router(plain, local=[FakeModel()], shadow=checked)


def test_trace_stats_compare_cli(tmp_path: Path) -> None:
    strict = policy(tmp_path, "strict", "accept = { min_mean_prob = 0.9 }")
    lenient = policy(tmp_path, "lenient", "accept = { min_mean_prob = 0.5 }")
    traces = TraceStore(tmp_path / "traces.jsonl")
    router = Router(strict, local=[FakeModel(prob=0.7)], remote=FakeModel(), traces=traces, shadow=lenient)
    for _ in range(3):
        router.route("What is the capital of France?")
    env = {**os.environ, "EDGEKIT_TRACE_FILE": str(traces.path)}
    done = subprocess.run(
        [sys.executable, "-m", "edgekit", "trace", "stats", "--compare", "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    c = json.loads(done.stdout)
    assert c["remote_share"] == {"actual": 1.0, "shadow": 0.0} and c["remote_tokens"]["shadow"] == 0
    assert c["remote_tokens"]["actual"] > 0 and c["switches"] == {"to local": 3}
    text = subprocess.run(
        [sys.executable, "-m", "edgekit", "trace", "stats", "--compare"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert text.returncode == 0 and "lenient.toml" in text.stdout and "3 to local" in text.stdout
