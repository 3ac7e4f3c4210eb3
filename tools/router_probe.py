"""Measure a hidden-state probe against the router's other confidence signals (AUROC of "the local
answer is right"), trained on the router set's CALIBRATION split only.

    python tools/router_probe.py [OBSERVATIONS] [--public OBS --public-items ITEMS] [--out probe.json]

OBSERVATIONS (default: recipes/data/router/observations/cross-check.jsonl, the shipped per-item results)
hold the local model's answers; each prompt + answer is read again by the local model in one batched pass
for its last-layer states (``edgekit.cascade.probe.answer_state``; cached under ~/.cache/edgekit). The
probe's L2 strength is chosen by 5-fold cross-fitted AUROC on the calibration split. Printed, per test set
(the shipped set's test split; with ``--public``, the public set of tools/build_router_public_set.py,
another distribution): AUROC with a bootstrap 95% interval of mean token probability, negative mean
entropy, cross-check agreement, the shipped learned acceptance score (recipes/cascade/tiny-accept.json),
the probe, and a logistic model over the learned score's features plus the probe; and the probe's cost
per request in ms.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import edgekit
from edgekit.cascade.evaluation import (
    Observation,
    default_items_path,
    evidence,
    load_items,
    observations_from_jsonl,
    rescore,
)
from edgekit.cascade.learned import AcceptModel, feature_columns, fit_logistic
from edgekit.cascade.probe import Probe, answer_state, auroc, cross_fitted
from edgekit.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "recipes" / "data" / "router" / "observations" / "cross-check.jsonl"
ACCEPT = ROOT / "recipes" / "cascade" / "tiny-accept.json"
L2_GRID = (10.0, 100.0, 1000.0, 10000.0)


def states_for(
    model: edgekit.Model, obs: list[Observation], prompts: dict[str, str], cache: Path
) -> np.ndarray:
    """Pooled states of every observation's prompt + local answer (cached by prompt and answer)."""
    saved = dict(np.load(cache)) if cache.is_file() else {}
    out, times = [], []
    for o in obs:
        key = hashlib.sha256(
            f"{model.backend.model_id}\n{prompts[o.id]}\n{o.local_answer}".encode()
        ).hexdigest()[:24]
        if key not in saved:
            t = time.perf_counter()
            msgs = [{"role": "user", "content": prompts[o.id]}]
            saved[key] = answer_state(model.backend, msgs, o.local_answer or "")  # type: ignore[arg-type]
            times.append((time.perf_counter() - t) * 1000)
        out.append(saved[key])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".partial.npz")
    np.savez(tmp, **saved)
    tmp.replace(cache)
    if times:
        print(f"read {len(times)} states: median {statistics.median(times):.1f} ms each", file=sys.stderr)
    return np.stack(out)


def interval(scores: np.ndarray, labels: np.ndarray, rounds: int = 1000) -> tuple[float, float, float]:
    rng = np.random.default_rng(0)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        v = auroc(scores[pick], labels[pick])
        if v == v:
            values.append(v)
    return auroc(scores, labels), float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("observations", type=Path, nargs="?", default=SHIPPED)
    ap.add_argument("--public", type=Path, help="Observations on the public set (another distribution).")
    ap.add_argument("--public-items", type=Path, help="That set's items (build_router_public_set.py).")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="Write the probe fit on the calibration split here.")
    args = ap.parse_args()
    items = load_items(default_items_path())
    obs = [
        o for o in rescore(observations_from_jsonl(args.observations), items) if o.local_answer is not None
    ]
    prompts = {i.id: i.prompt for i in items}
    sets = {"shipped set, test split": [o for o in obs if o.split == "test"]}
    cal = [o for o in obs if o.split == "calibration"]
    if args.public:
        public_items = load_items(args.public_items)
        prompts.update({i.id: i.prompt for i in public_items})
        public = rescore(observations_from_jsonl(args.public), public_items)
        sets["public set (another distribution)"] = [o for o in public if o.local_answer is not None]
    cache = Path.home() / ".cache" / "edgekit" / "router-probe-states.npz"
    with edgekit.load(args.model, threads=args.threads) as model:
        x_cal = states_for(model, cal, prompts, cache)
        x_sets = {name: states_for(model, part, prompts, cache) for name, part in sets.items()}
        t = time.perf_counter()
        for o in cal[:20]:
            answer_state(model.backend, [{"role": "user", "content": prompts[o.id]}], o.local_answer or "")  # type: ignore[list-item]
        cost = (time.perf_counter() - t) * 1000 / 20
    y_cal = np.array([o.local_ok for o in cal])
    cv = {l2: auroc(cross_fitted(x_cal, y_cal, l2=l2), y_cal) for l2 in L2_GRID}
    l2 = max(cv, key=lambda k: cv[k])
    print(
        "calibration, cross-fitted probe AUROC by l2: " + ", ".join(f"{k:g}: {v:.3f}" for k, v in cv.items())
    )
    probe = Probe.fit(x_cal, y_cal, l2=l2, trained_on=f"calibration split of {args.observations.name}")
    accept = AcceptModel.load(ACCEPT)

    # stacked: the accept model's standardized features plus the cross-fitted probe score, fit on calibration
    def stacked_columns(part: list[Observation], probe_scores: np.ndarray) -> np.ndarray:
        ev = [evidence(o, prompts[o.id]) for o in part]
        base = (feature_columns(ev, accept.features) - accept.mean) / accept.std
        return np.column_stack([base, probe_scores, np.ones(len(part))])

    w = fit_logistic(stacked_columns(cal, cross_fitted(x_cal, y_cal, l2=l2)), y_cal.astype(float), 3.0)
    print(f"probe l2 {l2:g}; reading the state costs {cost:.1f} ms per request (mean of 20, 1 thread)")
    for name, part in sets.items():
        y = np.array([o.local_ok for o in part])
        ev = [evidence(o, prompts[o.id]) for o in part]
        probe_scores = probe.scores(x_sets[name])
        signals = {
            "mean token probability": np.array([o.mean_prob for o in part]),
            "negative mean entropy": -np.array([o.mean_entropy for o in part]),
            "cross-check agreement": np.array([o.agreement or 0.0 for o in part]),
            "learned acceptance (shipped)": accept.scores(ev),
            "hidden-state probe": probe_scores,
            "learned features + probe": 1 / (1 + np.exp(-stacked_columns(part, probe_scores) @ w)),
        }
        print(f"\n{name}: {len(part)} items, local right {y.mean():.1%}")
        for label, s in signals.items():
            a, lo, hi = interval(np.asarray(s, dtype=float), y)
            print(f"  {label:32s} AUROC {a:.3f} [{lo:.3f}-{hi:.3f}]")
    if args.out:
        atomic_write_text(args.out, probe.to_json() + "\n")
        print(f"probe -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
