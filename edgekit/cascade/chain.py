"""The second local opinion as a tier: when the tiny answer is rejected, keep the cross-check model's answer
if its own acceptance model trusts it, before calling the remote.

The cross-check model already answers every request the tiny tier does not reject outright (its answer is
the agreement signal), so keeping its answer costs no generation there; requests whose tiny answer was
cut off get one more local generation. Its acceptance model is the same logistic regression as the tiny
tier's (``AcceptModel``), over the cross-check answer's own signals and its agreement with the tiny
answer, trained on the calibration items the tiny tier rejected (the ones it will judge), labelled by
whether the cross-check answer is right.

``chain_report`` measures it from saved observations: both thresholds chosen on the calibration split
(the tiny one as ``calibrate_accept_model`` does; the cross-check one for the fewest remote calls at the
quality target, on leave-one-out scores), reported on the test split with bootstrap 95% intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgekit.cascade.evaluation import (
    Observation,
    calibrate_accept_model,
    evidence,
    ratio_intervals,
    threshold_grid,
)
from edgekit.cascade.learned import AcceptModel, Evidence, feature_layout, leave_one_out_scores

CHECK_FEATURES = feature_layout(agreement=True, neighbours=False)


def check_evidence(o: Observation, prompt: str) -> Evidence:
    """What the cross-check answer's acceptance model sees (its own signals, the agreement)."""
    return Evidence(
        prompt, o.check_mean_prob or 0.0, o.check_min_prob or 0.0, o.check_mean_entropy or 0.0,
        o.check_tokens or 0, o.agreement,
    )  # fmt: skip


def _tiny_rejects(o: Observation, score: float, threshold: float) -> bool:
    return not o.pinned_local and not o.gate_reason and (o.local_cut or score < threshold)


def decisions(
    obs: Sequence[Observation], tiny: Sequence[float], t1: float, check: Sequence[float] | None, t2: float
) -> list[str]:
    """Per observation: 'local' (the tiny answer), 'check' (the cross-check answer) or 'remote'."""
    out = []
    for i, o in enumerate(obs):
        if o.pinned_local or (not o.gate_reason and not _tiny_rejects(o, tiny[i], t1)):
            out.append("local")
        elif o.gate_reason or check is None or o.check_finish == "length" or check[i] < t2:
            out.append("remote")
        else:
            out.append("check")
    return out


def _right(o: Observation, d: str) -> bool:
    return bool(o.local_ok if d == "local" else o.check_ok if d == "check" else o.remote_ok)


def point(obs: Sequence[Observation], ds: Sequence[str]) -> dict[str, float]:
    n = len(obs) or 1
    return {
        "quality": sum(_right(o, d) for o, d in zip(obs, ds, strict=True)) / n,
        "remote_share": ds.count("remote") / n,
        "check_share": ds.count("check") / n,
    }


def fit_check_model(
    cal: Sequence[Observation],
    prompts: Mapping[str, str],
    tiny: Sequence[float],
    t1: float,
    *,
    target: float = 0.95,
    trained_on: str = "",
) -> tuple[AcceptModel, list[float]]:
    """The cross-check answer's acceptance model, fit on the calibration items the tiny tier rejects, with
    its threshold at the fewest remote calls whose quality is >= ``target`` x always-remote (leave-one-out
    scores). Returns the model and one score per item of ``cal`` (leave-one-out where it was trained)."""
    seen = [i for i, o in enumerate(cal) if _tiny_rejects(o, tiny[i], t1) and not o.gate_reason]
    if len(seen) < 8:
        raise ValueError(f"only {len(seen)} calibration items reach the cross-check tier")
    ev = [check_evidence(cal[i], prompts[cal[i].id]) for i in seen]
    right = [bool(cal[i].check_ok) for i in seen]
    model = AcceptModel.fit(ev, right, None, features=CHECK_FEATURES, trained_on=trained_on)
    scores = [float(v) for v in model.scores([check_evidence(o, prompts[o.id]) for o in cal])]
    for i, v in zip(seen, leave_one_out_scores(ev, right, None, features=CHECK_FEATURES), strict=True):
        scores[i] = float(v)
    remote_q = sum(o.remote_ok for o in cal) / (len(cal) or 1)
    best = None
    for t2 in threshold_grid([scores[i] for i in seen]):
        p = point(cal, decisions(cal, tiny, t1, scores, t2))
        if p["quality"] >= target * remote_q and (best is None or p["remote_share"] < best[1]):
            best = (t2, p["remote_share"])
    return model.with_threshold(1.01 if best is None else best[0]), scores


def _split(obs: Sequence[Observation], ds: Sequence[str], extra: Sequence[bool]) -> dict[str, Any]:
    n = len(obs) or 1
    p = point(obs, ds)
    remote_q = sum(o.remote_ok for o in obs) / n
    oracle = sum(1 for o in obs if not o.local_ok) / n
    got = [_right(o, d) for o, d in zip(obs, ds, strict=True)]
    return {
        **p,
        "quality_vs_remote": p["quality"] / remote_q if remote_q else 0.0,
        "share_vs_oracle": p["remote_share"] / oracle if oracle else float("inf"),
        "extra_local_generations": sum(extra) / n,
        "interval_95": ratio_intervals(obs, got, [d == "remote" for d in ds]),
    }


def chain_report(
    cal: Sequence[Observation],
    test: Sequence[Observation],
    prompts: Mapping[str, str],
    target: float = 0.95,
) -> dict[str, Any]:
    """The tiny tier (learned, with agreement) then the cross-check answer, then the remote: thresholds
    chosen on ``cal``, reported on ``test``. ``extra_local_generations``: share of requests whose
    cross-check answer is generated only for this tier (the tiny answer was cut off)."""
    tiny_model, tiny_loo = calibrate_accept_model(cal, prompts, None, target=target)
    t1 = float(tiny_model.threshold if tiny_model.threshold is not None else 0.5)
    check_model, check_cal = fit_check_model(cal, prompts, tiny_loo, t1, target=target)
    t2 = float(check_model.threshold if check_model.threshold is not None else 1.01)
    tiny_test = [float(v) for v in tiny_model.scores([evidence(o, prompts[o.id]) for o in test])]
    check_test = [float(v) for v in check_model.scores([check_evidence(o, prompts[o.id]) for o in test])]
    out: dict[str, Any] = {
        "tiny_threshold": t1,
        "check_threshold": t2,
        "check_features": list(CHECK_FEATURES),
    }
    for name, obs, tiny, check in (
        ("calibration", cal, tiny_loo, check_cal),
        ("test", test, tiny_test, check_test),
    ):
        ds = decisions(obs, tiny, t1, check, t2)
        extra = [d != "local" and not o.gate_reason and o.local_cut for o, d in zip(obs, ds, strict=True)]
        out[name] = _split(obs, ds, extra)
    return out
