"""The cross-check answer as a tier, measured from saved observations: thresholds chosen on the calibration
split only; and the cross-check signals read again by teacher forcing match generation (real model)."""

from __future__ import annotations

import importlib.util
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.cascade.chain import chain_report, decisions, point
from edgekit.cascade.evaluation import Observation

ROOT = Path(__file__).resolve().parents[2]


def observations(n: int, split: str, seed: int) -> list[Observation]:
    """The tiny answer is right when confident; the second model is right more often, and when it is
    confident; the remote is always right."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prob, check_prob = rng.random(), rng.random()
        out.append(
            Observation(
                f"{split}{i}", "c", split, prob > 0.6, True, prob, None, False, 10,  # type: ignore[arg-type]
                prob, 1.0, 5, "d", "a", "b", rng.random() * 0.3, "c", "stop",
                check_prob > 0.3, check_prob, check_prob, 1.0, 5, "stop",
            )
        )  # fmt: skip
    return out


def test_decisions_never_keep_a_cut_off_or_gated_answer() -> None:
    o = observations(1, "test", 0)[0]
    assert decisions([o], [0.9], 0.5, [0.9], 0.5) == ["local"]
    assert decisions([o], [0.1], 0.5, [0.9], 0.5) == ["check"]
    assert decisions([o], [0.1], 0.5, [0.1], 0.5) == ["remote"]
    assert decisions([replace(o, local_finish="length")], [0.9], 0.5, [0.9], 0.5) == ["check"]
    assert decisions([replace(o, check_finish="length")], [0.1], 0.5, [0.9], 0.5) == ["remote"]
    assert decisions([replace(o, gate_reason="gate keywords:domain: x")], [0.9], 0.5, [0.9], 0.5) == [
        "remote"
    ]
    assert decisions([replace(o, pinned_local=True)], [0.1], 0.5, [0.1], 0.5) == ["local"]


def test_chain_thresholds_come_from_calibration_and_cut_remote_calls() -> None:
    cal, test = observations(300, "calibration", 1), observations(200, "test", 2)
    prompts = {o.id: "What is the answer to this question here?" for o in cal + test}
    report = chain_report(cal, test, prompts, target=0.9)
    assert report["calibration"]["quality_vs_remote"] >= 0.9
    assert 0 < report["test"]["check_share"] < 1 and report["test"]["remote_share"] < 1
    lo, hi = report["test"]["interval_95"]["quality_vs_remote"]
    assert lo <= report["test"]["quality_vs_remote"] <= hi
    # Relabelling the test split moves only its report.
    flipped = [replace(o, check_ok=not o.check_ok) for o in test]
    again = chain_report(cal, flipped, prompts, target=0.9)
    assert again["check_threshold"] == report["check_threshold"]
    assert again["test"]["quality"] < report["test"]["quality"]
    assert point(test, ["remote"] * len(test))["remote_share"] == 1.0


@pytest.mark.model
def test_teacher_forced_signals_match_generation(
    default_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgekit

    spec = importlib.util.spec_from_file_location(
        "router_check_signals", ROOT / "tools" / "router_check_signals.py"
    )
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, tool)
    spec.loader.exec_module(tool)
    with edgekit.load(default_model_path) as model:
        prompt = "What is the capital of France?"
        done = model.chat(prompt, temperature=0.0, max_tokens=16, seed=0)
        mean, least, entropy, n = tool.answer_signals(model.backend, prompt, done.text)
    conf = done.confidence
    assert n == done.usage.completion_tokens
    assert mean == pytest.approx(conf.mean_prob, abs=0.02) and entropy == pytest.approx(
        conf.mean_entropy, abs=0.1
    )
    assert least == pytest.approx(conf.min_prob, abs=0.02)
