"""Speed and size of the two models, measured in the same run with the same prompt and settings.

Each model answers the same prompt greedily ``runs`` times, the two models taking turns (baseline,
candidate, baseline, ...) so that a slow spell on a shared machine hits both alike; the fastest run of
each counts. Generation tok/s excludes prompt processing; TTFT is the time to the first token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekit.api import Model


@dataclass(frozen=True)
class Speed:
    gen_tok_s: float | None
    ttft_ms: float | None
    size_bytes: int
    scoring_tok_s: float | None = None
    """Tokens per second while scoring the slices (prompt-processing speed), when scored in this run."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "gen_tok_s": _round(self.gen_tok_s, 2),
            "ttft_ms": _round(self.ttft_ms, 1),
            "size_bytes": self.size_bytes,
            "scoring_tok_s": _round(self.scoring_tok_s, 1),
        }


def _round(v: float | None, nd: int) -> float | None:
    return None if v is None else round(v, nd)


def measure(
    models: tuple[Model, Model],
    *,
    prompt: str,
    max_tokens: int,
    runs: int,
    on_done: Callable[[int, int], None] | None = None,
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((gen tok/s, ttft ms) of the first model, same for the second), or None when runs is 0."""
    if runs < 1:
        return None
    best: list[tuple[float, float]] = [(0.0, float("inf")), (0.0, float("inf"))]
    total = 2 * runs
    for i in range(total):
        side = i % 2
        reply = models[side].chat(prompt, temperature=0.0, max_tokens=max_tokens, seed=0)
        tok_s, ttft = best[side]
        best[side] = (max(tok_s, reply.timings.tokens_per_s), min(ttft, reply.timings.ttft_s * 1000))
        if on_done:
            on_done(i + 1, total)
    return best[0], best[1]
