"""Fill in the cross-check answer's own confidence signals in saved router observations that lack them.

    python tools/router_check_signals.py OBSERVATIONS [--items ITEMS] [--model qwen2.5-coder-0.5b-instruct]

Files from before ``eval-router`` recorded them hold the cross-check model's answer text only. Its signals
(mean and minimum chosen-token probability, mean entropy, tokens) are read again by that model in one
batched pass over the chat prompt + the saved answer (teacher forcing): for a greedy (temperature 0)
answer these are the probabilities it was generated with, up to re-tokenization of the text. An answer
of at least ``--max-tokens`` tokens is marked cut off. The file is rewritten atomically; observations
that already have the signals are kept as they are.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import edgekit
from edgekit.cascade.evaluation import (
    default_items_path,
    load_items,
    observations_from_jsonl,
    observations_to_jsonl,
    rescore,
)
from edgekit.files import atomic_write_text
from edgekit.runtime.decoding import token_signal


def answer_signals(backend: object, prompt: str, answer: str) -> tuple[float, float, float, int]:
    """(mean prob, min prob, mean entropy, tokens) of ``answer`` after the chat prompt, teacher-forced."""
    head = backend.prompt_tokens([{"role": "user", "content": prompt}])  # type: ignore[attr-defined]
    reply = backend.tokenize(answer, special=False) if answer else []  # type: ignore[attr-defined]
    if not reply:
        return 0.0, 0.0, 0.0, 0
    tokens = [*head, *reply]
    probs, ents, pos = [], [], 0
    for block in backend.logit_blocks(tokens):  # type: ignore[attr-defined]
        for row in range(block.shape[0]):
            nxt = pos + row + 1
            if len(head) <= nxt < len(tokens):
                p, e = token_signal(block[row], tokens[nxt])
                probs.append(p)
                ents.append(e)
        pos += block.shape[0]
    return math.fsum(probs) / len(probs), min(probs), math.fsum(ents) / len(ents), len(reply)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("observations", type=Path)
    ap.add_argument("--items", type=Path, default=None, help="Labeled prompts [default: the shipped set].")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="The cross-check model.")
    ap.add_argument("--max-tokens", type=int, default=64, help="The limit the answers were made under.")
    args = ap.parse_args()
    items = load_items(args.items or default_items_path())
    prompts = {i.id: i.prompt for i in items}
    obs = rescore(observations_from_jsonl(args.observations), items, args.max_tokens)
    todo = [k for k, o in enumerate(obs) if o.check_answer is not None and o.check_mean_prob is None]
    with edgekit.load(args.model) as model:
        for done, k in enumerate(todo, 1):
            o = obs[k]
            mean, least, ent, n = answer_signals(model.backend, prompts[o.id], o.check_answer or "")
            finish = "length" if n >= args.max_tokens else "stop"
            obs[k] = replace(o, check_mean_prob=mean, check_min_prob=least, check_mean_entropy=ent,
                             check_tokens=n, check_finish=finish)  # fmt: skip
            if done % 50 == 0:
                print(f"{done}/{len(todo)}", file=sys.stderr)
    atomic_write_text(args.observations, observations_to_jsonl(obs))
    print(f"{len(todo)} cross-check answers read again by {args.model}; {args.observations}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
