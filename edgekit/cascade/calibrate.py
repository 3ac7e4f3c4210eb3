"""Calibrate a policy's acceptance threshold on the user's own labeled traffic.

Input: per-request observations with labels (``eval-router --observations`` on the user's prompts: the
local answer's signals, whether the local and the remote answers were right). The first local tier's
acceptance score is computed for each (its learned model's score when it has one, else the mean token
probability), the threshold that meets the target is chosen on the calibration split, and the cascade at
that threshold is reported on the test split with bootstrap 95% intervals: a threshold is never judged on
the items that chose it.

Targets: ``quality`` (keep at least this share of always-remote quality, with the fewest remote calls) or
``max_remote_share`` (at most this share of requests go remote, with the best quality).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from edgekit.cascade.evaluation import (
    Observation,
    bootstrap_interval,
    choose_threshold,
    evidence,
    operating_point,
    route_decisions,
    threshold_grid,
)
from edgekit.cascade.learned import AcceptModel, Embed
from edgekit.cascade.policy import Policy, PolicyError
from edgekit.errors import InputError
from edgekit.files import atomic_write_text


@dataclass(frozen=True)
class Calibration:
    tier: str
    key: str
    """The acceptance key the threshold goes to: ``min_score`` (learned) or ``min_mean_prob``."""
    threshold: float
    target: str
    calibration: dict[str, Any]
    test: dict[str, Any]
    """The cascade at ``threshold`` on the test split, with ``interval_95`` (empty without test items)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("tier", "key", "threshold", "target", "calibration", "test")}


def acceptance_scores(
    policy: Policy, obs: Sequence[Observation], prompts: Mapping[str, str], embed: Embed | None = None
) -> tuple[str, list[float]]:
    """(the key, one score per observation) for the policy's first local tier."""
    tier = policy.local_tiers[0]
    if not tier.accept.learned:
        return "min_mean_prob", [o.mean_prob for o in obs]
    model = AcceptModel.load(policy.beside(tier.accept.learned))
    if model.uses_agreement and any(o.agreement is None for o in obs):
        raise InputError(
            f"tier {tier.name!r}'s accept model uses cross-check agreement; these observations have none",
            "Record them with a policy whose first tier has cross_check (the shipped cross-check policy).",
        )
    missing = sorted({o.id for o in obs} - set(prompts))
    if missing:
        raise InputError(
            f"{len(missing)} observations have no prompt in the items file (first: {missing[0]!r})",
            "Pass the labeled prompts the observations were recorded on.",
        )
    ev = [evidence(o, prompts[o.id]) for o in obs]
    if model.uses_neighbours and embed is None:
        raise InputError("the accept model uses neighbours and needs the sentence encoder")
    emb = embed([e.prompt for e in ev]) if model.uses_neighbours and embed is not None else None
    return "min_score", [float(v) for v in model.scores(ev, emb)]


def _report(obs: Sequence[Observation], threshold: float, scores: Sequence[float]) -> dict[str, Any]:
    if not obs:
        return {}
    n = len(obs)
    point = operating_point(obs, threshold, scores)
    remote_q = sum(o.remote_ok for o in obs) / n
    oracle = sum(1 for o in obs if not o.local_ok) / n
    return {
        "items": n,
        "quality": point["quality"],
        "remote_share": point["remote_share"],
        "quality_vs_remote": point["quality"] / remote_q if remote_q else 0.0,
        "share_vs_oracle": point["remote_share"] / oracle if oracle else float("inf"),
        "interval_95": bootstrap_interval(obs, route_decisions(obs, threshold, scores)),
    }


def calibrate(
    policy: Policy,
    obs: Sequence[Observation],
    prompts: Mapping[str, str],
    *,
    quality: float | None = None,
    max_remote_share: float | None = None,
    embed: Embed | None = None,
) -> Calibration:
    """Choose the first local tier's threshold for one target on the calibration split of ``obs``."""
    if (quality is None) == (max_remote_share is None):
        raise InputError("give exactly one target", "Use quality=Q or max_remote_share=S.")
    key, scores = acceptance_scores(policy, obs, prompts, embed)
    cal = [i for i, o in enumerate(obs) if o.split == "calibration"]
    test = [i for i, o in enumerate(obs) if o.split == "test"]
    if len(cal) < 20:
        raise InputError(
            f"{len(cal)} observations in the calibration split; at least 20 are needed",
            "Label more requests (items without a split are assigned one by a hash of their id).",
        )
    cal_obs, cal_scores = [obs[i] for i in cal], [scores[i] for i in cal]
    grid = threshold_grid(cal_scores)
    if quality is not None:  # always met: sending everything remote keeps all of its quality
        chosen = choose_threshold(cal_obs, grid, quality, cal_scores)
        target = f"quality >= {quality} x always-remote, fewest remote calls"
    else:
        assert max_remote_share is not None
        points = [operating_point(cal_obs, t, cal_scores) for t in grid]
        ok = [p for p in points if p["remote_share"] <= max_remote_share]
        target = f"remote share <= {max_remote_share}, best quality"
        if not ok:  # even accepting every local answer sends more (gates and cut-off answers escalate)
            raise InputError(
                f"no threshold meets {target} on the calibration split",
                "Loosen the target; gates and cut-off answers escalate whatever the threshold.",
            )
        chosen = max(ok, key=lambda p: (p["quality"], -p["remote_share"]))["threshold"]
    threshold = min(float(chosen), 1.0)
    tier = policy.local_tiers[0].name
    test_obs, test_scores = [obs[i] for i in test], [scores[i] for i in test]
    return Calibration(
        tier,
        key,
        threshold,
        target,
        _report(cal_obs, threshold, cal_scores),
        _report(test_obs, threshold, test_scores),
    )


def write_policy(policy: Policy, calibration: Calibration, out: Path) -> None:
    """A copy of ``policy`` (comments kept) with the calibrated threshold, written atomically to ``out``.
    A learned model path is made absolute when ``out`` is in another folder than the policy."""
    if policy.path is None:
        raise InputError("the policy was not read from a file; nothing to copy")
    doc = tomlkit.parse(policy.path.read_text(encoding="utf-8"))
    tier = next(t for t in doc["tiers"] if t["name"] == calibration.tier)
    if "accept" not in tier:
        tier["accept"] = tomlkit.inline_table()
    accept = tier["accept"]
    accept[calibration.key] = round(calibration.threshold, 6)
    learned = accept.get("learned")
    if learned and out.resolve().parent != policy.path.resolve().parent:
        accept["learned"] = str(policy.beside(learned).resolve())
    text = tomlkit.dumps(doc)
    try:
        Policy.parse(text, out)
    except PolicyError as e:  # pragma: no cover - the key written is one the schema knows
        raise InputError(f"the calibrated policy does not validate: {e.message}") from None
    atomic_write_text(out, text)
