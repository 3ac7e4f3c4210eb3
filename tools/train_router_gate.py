"""Train the cascade's learned acceptance model on the router set's CALIBRATION split only.

    python tools/bench_router.py --out router.json          # writes router.jsonl (per-item results)
    python tools/train_router_gate.py router.jsonl [--out recipes/cascade/tiny-accept.json]

The test split is never read here: it stays for reporting (``edgekit eval-router --from-observations``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from edgekit.cascade.evaluation import (
    default_items_path,
    load_items,
    observations_from_jsonl,
    train_accept_model,
)
from edgekit.cascade.learned import default_embed
from edgekit.evaluate.files import atomic_write_text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("observations", type=Path)
    ap.add_argument("--out", type=Path, default=Path("recipes/cascade/tiny-accept.json"))
    args = ap.parse_args()
    prompts = {i.id: i.prompt for i in load_items(default_items_path())}
    obs = [o for o in observations_from_jsonl(args.observations) if o.split == "calibration"]
    digest = hashlib.sha256(args.observations.read_bytes()).hexdigest()
    model = train_accept_model(
        obs, prompts, default_embed(), trained_on=f"calibration split of {digest[:16]}"
    )
    atomic_write_text(args.out, model.to_json() + "\n")
    print(f"trained on {len(obs)} calibration observations -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
