"""route calibrate: a threshold chosen on the calibration split only, reported on the test split, written
into a copy of the policy that loads; the CLI on the shipped saved results (no model runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.cascade.calibrate import calibrate, write_policy
from edgekit.cascade.evaluation import Observation
from edgekit.cascade.policy import Policy
from edgekit.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recipes" / "data" / "router" / "observations" / "cross-check.jsonl"

POLICY = """\
# a policy with a comment that must survive
version = 1
[[tiers]]
name = "tiny"
kind = "local"
model = "smollm2-135m-instruct"
[[tiers]]
name = "remote"
kind = "remote"
model = "big"
"""


def observations(n: int, split: str, seed: int) -> list[Observation]:
    """The local answer is right when its mean probability is high (with some noise); remote always right."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        prob = rng.random()
        ok = prob + rng.uniform(-0.2, 0.2) > 0.5
        out.append(Observation(f"{split}{i}", "c", split, ok, True, prob, None, False, 10))  # type: ignore[arg-type]
    return out


def policy(tmp_path: Path) -> Policy:
    (tmp_path / "p.toml").write_text(POLICY)
    return Policy.load(tmp_path / "p.toml")


def test_quality_target_is_met_on_calibration_and_the_test_split_only_reports(tmp_path: Path) -> None:
    cal, test = observations(200, "calibration", 1), observations(100, "test", 2)
    got = calibrate(policy(tmp_path), cal + test, {}, quality=0.9)
    assert got.key == "min_mean_prob" and got.tier == "tiny"
    assert got.calibration["quality_vs_remote"] >= 0.9
    assert got.calibration["items"] == 200 and got.test["items"] == 100
    assert 0 < got.threshold < 1 and got.calibration["remote_share"] < 1
    lo, hi = got.test["interval_95"]["quality_vs_remote"]
    assert lo <= got.test["quality_vs_remote"] <= hi
    # Relabelling the test split moves its report, never the threshold.
    flipped = [replace(o, local_ok=not o.local_ok) for o in test]
    again = calibrate(policy(tmp_path), cal + flipped, {}, quality=0.9)
    assert again.threshold == got.threshold and again.test != got.test


def test_remote_share_target_caps_the_share_on_calibration(tmp_path: Path) -> None:
    cal = observations(200, "calibration", 3)
    got = calibrate(policy(tmp_path), cal, {}, max_remote_share=0.3)
    assert got.calibration["remote_share"] <= 0.3 and got.test == {}
    tighter = calibrate(policy(tmp_path), cal, {}, max_remote_share=0.1)
    assert tighter.threshold < got.threshold


def test_targets_that_cannot_be_met_or_too_little_data_are_input_errors(tmp_path: Path) -> None:
    cal = [replace(o, gate_reason="gate keywords:domain: x") for o in observations(50, "calibration", 4)]
    with pytest.raises(InputError, match="no threshold meets"):
        calibrate(policy(tmp_path), cal, {}, max_remote_share=0.5)  # every item is gated to the remote
    with pytest.raises(InputError, match="at least 20"):
        calibrate(policy(tmp_path), observations(5, "calibration", 5), {}, quality=0.9)
    with pytest.raises(InputError, match="exactly one target"):
        calibrate(policy(tmp_path), observations(50, "calibration", 5), {}, quality=0.9, max_remote_share=0.2)


def test_written_policy_keeps_comments_and_loads_with_the_threshold(tmp_path: Path) -> None:
    plain = policy(tmp_path)
    result = calibrate(plain, observations(100, "calibration", 6), {}, quality=0.9)
    write_policy(plain, result, tmp_path / "calibrated.toml")
    written = (tmp_path / "calibrated.toml").read_text()
    assert written.startswith("# a policy with a comment that must survive")
    loaded = Policy.load(tmp_path / "calibrated.toml")
    assert loaded.tiers[0].accept.min_mean_prob == pytest.approx(result.threshold, abs=1e-6)
    assert (tmp_path / "p.toml").read_text() == POLICY  # the source is untouched


def edgekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_cli_calibrates_the_shipped_policy_on_its_saved_results(tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "calibrated.toml"
    out.parent.mkdir()
    done = edgekit(
        "route", "calibrate", "--policy", "cross-check", "--observations", str(SHIPPED),
        "--quality", "0.95", "--out", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["key"] == "min_score" and report["calibration"]["quality_vs_remote"] >= 0.95
    assert report["calibration"]["items"] > 300 and report["test"]["items"] > 300
    policy = Policy.load(out)  # the learned model's path was made absolute: it loads from another folder
    accept = policy.tiers[0].accept
    assert accept.min_score == pytest.approx(report["threshold"], abs=1e-6)
    assert accept.learned is not None and Path(accept.learned).is_file()
    missing = edgekit("route", "calibrate", "--observations", str(SHIPPED))
    assert (
        missing.returncode == 2 and "no target given" in missing.stderr and "Traceback" not in missing.stderr
    )
