"""The stable safety taxonomy: categories, actions, and the verdict every filter returns.

Harm categories follow the MLCommons AI Safety hazard list as used by Llama Guard 3 (S1..S14), so
verdicts line up with that model family's labels; edgekit adds the categories its pattern filters own:
``pii``, ``secrets``, ``prompt_injection``, ``unsupported_language`` and ``banned_sequence`` (phrases a
policy forbids in generated text). Names are part of the policy
file format: they are only ever added to, never renamed.

Actions, from mildest to strictest: ``allow`` (do nothing), ``warn`` (let it through, record it),
``redact`` (replace the matched spans), ``escalate`` (route to the safer path: the larger or remote
model, or a human), ``block`` (refuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["allow", "warn", "redact", "escalate", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "warn", "redact", "escalate", "block")
"""Ordered by strictness: when filters disagree the strictest action wins."""

HAZARDS: dict[str, str] = {
    "S1": "violent_crimes",
    "S2": "non_violent_crimes",
    "S3": "sex_related_crimes",
    "S4": "child_sexual_exploitation",
    "S5": "defamation",
    "S6": "specialized_advice",
    "S7": "privacy",
    "S8": "intellectual_property",
    "S9": "indiscriminate_weapons",
    "S10": "hate",
    "S11": "suicide_self_harm",
    "S12": "sexual_content",
    "S13": "elections",
    "S14": "code_interpreter_abuse",
}
"""MLCommons hazard code -> category name (Llama Guard 3's S1..S14)."""

EDGEKIT_CATEGORIES = ("pii", "secrets", "prompt_injection", "unsupported_language", "banned_sequence")
CATEGORIES: tuple[str, ...] = (*HAZARDS.values(), *EDGEKIT_CATEGORIES)
CODES: dict[str, str] = {name: code for code, name in HAZARDS.items()}

Layer = Literal["input", "context", "model_input", "decoding", "output", "tool_call", "delivery"]
LAYERS: tuple[Layer, ...] = ("input", "context", "model_input", "decoding", "output", "tool_call", "delivery")
"""The enforcement points, in request order (see ``guard.Guard``)."""


def strictest(actions: list[Action] | tuple[Action, ...]) -> Action:
    return max(actions, key=ACTIONS.index, default="allow")


@dataclass(frozen=True)
class Span:
    """Half-open character range ``[start, end)`` into the text the caller gave (not the normalized one)."""

    start: int
    end: int
    kind: str = ""
    """Finer type inside the category, e.g. ``email`` or ``aws_access_key``."""


@dataclass(frozen=True)
class Verdict:
    """One finding: its category, the action the filter proposes, where it is, and why in words.

    The reason never quotes the matched text. ``score`` is the classifier's probability (1.0 for pattern
    matches). The policy may replace the action (see ``policy.Policy.action_for``).
    """

    category: str
    action: Action
    spans: tuple[Span, ...] = ()
    reason: str = ""
    score: float = 1.0
    filter: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())
    """Small, non-sensitive facts (e.g. the detected language)."""
