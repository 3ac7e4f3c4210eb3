"""Train the cascade's learned acceptance model on the router set's CALIBRATION split only.

    python tools/bench_router.py --policy recipes/cascade/cross-check.toml --out router.json
    python tools/train_router_gate.py router.jsonl [--out recipes/cascade/tiny-accept.json] [--neighbours]
    python tools/train_router_gate.py router.jsonl --cross-check-out recipes/cascade/check-accept.json

The features follow the observations: cross-check agreement when it was measured (a policy whose first
tier has ``cross_check``), the neighbour feature (MiniLM embeddings of the prompts) otherwise or with
``--neighbours``. The threshold saved with the model is the smallest remote share whose quality is
>= 95% of always-remote on leave-one-out scores of the calibration split. The test split is never read
here: it stays for reporting (``edgekit eval-router --from-observations``).

``--cross-check-out``: also the acceptance model of the cross-check answer kept as a tier
(``edgekit.cascade.chain``; needs the cross-check answers' signals, ``tools/router_check_signals.py``),
fit on the calibration items the tiny model rejects, its threshold at the fewest remote calls whose quality
is >= 95% of always-remote.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from edgekit.cascade.chain import fit_check_model
from edgekit.cascade.evaluation import (
    calibrate_accept_model,
    default_items_path,
    learned_features,
    load_items,
    observations_from_jsonl,
    rescore,
)
from edgekit.cascade.learned import NEIGHBOURS, default_embed
from edgekit.files import atomic_write_text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("observations", type=Path)
    ap.add_argument("--out", type=Path, default=Path("recipes/cascade/tiny-accept.json"))
    ap.add_argument("--neighbours", action="store_true", help="Also use the nearest-prompt feature.")
    ap.add_argument("--max-tokens", type=int, default=64, help="The limit the answers were made under.")
    ap.add_argument("--cross-check-out", type=Path, help="Also write the cross-check answer's model here.")
    args = ap.parse_args()
    items = load_items(default_items_path())
    prompts = {i.id: i.prompt for i in items}
    # judged with the current checks, cut-off answers marked as such (files from before either)
    judged = rescore(observations_from_jsonl(args.observations), items, args.max_tokens)
    cal = [o for o in judged if o.split == "calibration"]
    neighbours = True if args.neighbours else None
    embed = default_embed() if NEIGHBOURS in learned_features(cal, neighbours) else None
    digest = hashlib.sha256(args.observations.read_bytes()).hexdigest()
    model, loo = calibrate_accept_model(
        cal, prompts, embed, neighbours=neighbours, trained_on=f"calibration split of {digest[:16]}"
    )
    atomic_write_text(args.out, model.to_json() + "\n")
    print(
        f"trained on {len(cal)} calibration observations ({', '.join(model.features)}); "
        f"threshold {model.threshold:.3f} -> {args.out}"
    )
    if args.cross_check_out:
        if not all(o.check_signals for o in cal):
            sys.exit(
                "the observations lack the cross-check answers' signals: run tools/router_check_signals.py"
            )
        assert model.threshold is not None
        check, _ = fit_check_model(
            cal, prompts, loo, model.threshold, trained_on=f"calibration split of {digest[:16]}"
        )
        atomic_write_text(args.cross_check_out, check.to_json() + "\n")
        print(
            f"cross-check answer's model ({', '.join(check.features)}): "
            f"threshold {check.threshold:.3f} -> {args.cross_check_out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
