"""Safety benchmark: filter quality on the labeled set's held-out split, and what full filtering costs.

    python tools/bench_safety.py [--prompts 8] [--max-tokens 128] [--rounds 2] [--json out.json]

1. PII recall per structured type on ``recipes/data/safety/pii.jsonl`` (held-out split; an item counts as
   found when a reported span covers it) and the false-positive rate on ``benign.jsonl`` (held-out split:
   share of texts with any PII or secret finding). Targets: recall >= 0.98, false positives <= 2%.
2. Harmful-content classifier precision and recall on ``harm.jsonl`` (held-out split), with the shipped
   head and the policy's thresholds, through the Guard's input layer.
3. Cost of full input + output filtering on the default model, in the same run: raw streamed generation
   against the same generation with ``check_input`` on the prompt and the output stream through
   ``guard_chunks`` (pattern filters with hold-back on every chunk, then the classifier on the whole
   answer). Rounds alternate raw and guarded (ABBA) so drift on a shared machine hits both. Target: the
   guarded side keeps >= 95% of raw tokens per second. On a busy machine the two sides' throughput drifts
   more than the filters cost, so the guarded runs also clock the time spent inside the model's iterator:
   the rest is the filters' own time, reported as a share of the guarded run and per token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edgekit  # noqa: E402
from edgekit.safety.dataset import data_dir, read_jsonl  # noqa: E402
from edgekit.safety.guard import Guard  # noqa: E402
from edgekit.safety.policy import load_policy  # noqa: E402

PROMPTS = [
    "Write a short paragraph about the history of the bicycle.",
    "Explain how a refrigerator keeps food cold.",
    "Give me three tips for writing a clear email to a colleague.",
    "Describe a calm morning at the seaside.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a database index is, with an example.",
    "Write a friendly note inviting neighbours to a garden party.",
    "Summarise the water cycle for a ten year old.",
]


def pii_quality(guard: Guard) -> dict[str, Any]:
    found: dict[str, list[int]] = {}
    for row in read_jsonl(data_dir() / "pii.jsonl", "heldout"):
        d = guard.check(row["text"], "delivery")
        spans = [s for v in d.verdicts for s in v.spans]
        for item in row["spans"]:
            hit = any(s.start <= item["start"] and s.end >= item["end"] for s in spans)
            found.setdefault(item["kind"], [0, 0])
            found[item["kind"]][0] += int(hit)
            found[item["kind"]][1] += 1
    hits, total = sum(h for h, _ in found.values()), sum(n for _, n in found.values())
    benign = read_jsonl(data_dir() / "benign.jsonl", "heldout")
    flagged = [r["text"] for r in benign if guard.check(r["text"], "delivery").verdicts]
    return {
        "recall": hits / total,
        "items": total,
        "per_type": {k: {"recall": h / n, "items": n} for k, (h, n) in sorted(found.items())},
        "benign_texts": len(benign),
        "false_positive_rate": len(flagged) / len(benign),
        "false_positives": flagged,
    }


def classifier_quality(guard: Guard) -> dict[str, Any]:
    rows = read_jsonl(data_dir() / "harm.jsonl", "heldout")
    tp = fp = fn = 0
    for r in rows:
        d = guard.check(r["text"], "input", filters=["language", "classifier"])
        flagged = any(v.filter == "classifier" for v in d.verdicts)
        harmful = r["label"] != "benign"
        tp += flagged and harmful
        fp += flagged and not harmful
        fn += harmful and not flagged
    return {
        "examples": len(rows),
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "false_positive_rate": fp / max(sum(r["label"] == "benign" for r in rows), 1),
    }


class _Clocked:
    """Wraps the model's chunk iterator and adds up the time spent inside it (generating)."""

    def __init__(self, chunks: Any) -> None:
        self.chunks, self.model_s = chunks, 0.0

    def __iter__(self) -> _Clocked:
        return self

    def __next__(self) -> Any:
        t = time.perf_counter()
        try:
            return next(self.chunks)
        finally:
            self.model_s += time.perf_counter() - t

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def generate(model: Any, guard: Guard | None, prompt: str, max_tokens: int) -> tuple[int, float, float]:
    """(completion tokens, seconds, seconds spent generating) for one streamed answer, filtered when
    ``guard`` is given; seconds minus generating seconds is what the filters cost."""
    t0 = time.perf_counter()
    if guard is not None:
        guard.check_input(prompt)
    clocked = _Clocked(model.chat(prompt, stream=True, max_tokens=max_tokens, temperature=0.0, seed=1))
    chunks = guard.guard_chunks(clocked) if guard is not None else clocked
    tokens = 0
    for c in chunks:
        if c.usage is not None:
            tokens = c.usage.completion_tokens
    return tokens, time.perf_counter() - t0, clocked.model_s


def cost(model: Any, guard: Guard, prompts: list[str], max_tokens: int, rounds: int) -> dict[str, Any]:
    for p in prompts[:2]:  # warm up both paths (and the encoder)
        generate(model, guard, p, 16)
        generate(model, None, p, 16)
    totals = {"raw": [0, 0.0, 0.0], "guarded": [0, 0.0, 0.0]}
    order = ["raw", "guarded", "guarded", "raw"] * rounds
    for side in order:
        for p in prompts:
            n, secs, gen = generate(model, guard if side == "guarded" else None, p, max_tokens)
            totals[side][0] += n
            totals[side][1] += secs
            totals[side][2] += gen
    raw = totals["raw"][0] / totals["raw"][1]
    guarded = totals["guarded"][0] / totals["guarded"][1]
    filters_s = totals["guarded"][1] - totals["guarded"][2]
    return {
        "raw_tok_s": round(raw, 2),
        "guarded_tok_s": round(guarded, 2),
        "ratio": round(guarded / raw, 4),
        "filter_share_of_guarded_time": round(filters_s / totals["guarded"][1], 4),
        "filter_ms_per_token": round(1000 * filters_s / max(totals["guarded"][0], 1), 3),
        "tokens_per_side": totals["raw"][0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--classifier-stream", choices=["end", "sentence"], default="end", help="policy [classifier] stream"
    )
    args = ap.parse_args()
    os.environ.setdefault("EDGEKIT_THREADS", "1")
    policy = load_policy()
    settings = policy.classifier.model_copy(update={"stream": args.classifier_stream})
    guard = Guard(policy.model_copy(update={"classifier": settings}))
    report: dict[str, Any] = {"pii": pii_quality(guard), "classifier": classifier_quality(guard)}
    with edgekit.load() as model:
        report["cost"] = cost(model, guard.warm(), PROMPTS[: args.prompts], args.max_tokens, args.rounds)
    report["cost"]["threads"] = os.environ["EDGEKIT_THREADS"]
    report["cost"]["classifier_stream"] = args.classifier_stream
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
