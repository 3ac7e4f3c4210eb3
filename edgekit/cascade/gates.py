"""Gates: small, explainable rules that read request features and say where a request should go.

A gate returns a ``GateDecision``: ``escalate`` (go remote now), ``local`` (keep it local, for example for
privacy), or ``pass`` (no opinion). Gates register by name (``REGISTRY``: name -> "module:Class", loaded
lazily), and a policy may name a class as "module:Class" from a module the user allowed in
``EDGEKIT_GATE_MODULES``, so a learned gate can replace the heuristics here without touching the router.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from edgekit.cascade.policy import GateSpec, PolicyError

Verdict = Literal["escalate", "local", "pass"]
OutputType = Literal["text", "json", "tool"]


@dataclass(frozen=True)
class Request:
    """What gates may look at: the text, its size, and what the caller asked for."""

    text: str
    prompt_tokens: int
    local_n_ctx: int
    max_tokens: int
    output_type: OutputType = "text"
    safety: Mapping[str, str] = field(default_factory=dict)
    """Category -> action from the safety filters, when they ran (empty otherwise)."""


@dataclass(frozen=True)
class GateDecision:
    gate: str
    verdict: Verdict
    reason: str


class Gate(Protocol):
    name: str

    def decide(self, request: Request) -> GateDecision: ...


class _GateBase:
    name = "gate"

    def __init__(self, **config: Any) -> None:
        self.config = config

    def _pass(self, reason: str = "no opinion") -> GateDecision:
        return GateDecision(self.name, "pass", reason)


class ContextGate(_GateBase):
    """Escalate when the prompt plus the answer cannot fit the local context, or the prompt is long."""

    name = "context"

    def decide(self, request: Request) -> GateDecision:
        need = request.prompt_tokens + request.max_tokens
        if need > request.local_n_ctx:
            return GateDecision(
                self.name,
                "escalate",
                f"prompt {request.prompt_tokens} + answer {request.max_tokens} tokens exceed the "
                f"local context of {request.local_n_ctx}",
            )
        limit = int(self.config.get("max_prompt_tokens", 1500))
        if request.prompt_tokens > limit:
            return GateDecision(self.name, "escalate", f"prompt of {request.prompt_tokens} tokens > {limit}")
        return self._pass(f"prompt of {request.prompt_tokens} tokens fits")


class KeywordGate(_GateBase):
    """Escalate (or keep local) when the text matches any pattern of a named list.

    Config: ``label`` (shown in reasons), ``patterns`` (regular expressions, case-insensitive),
    ``min_matches`` (default 1), ``verdict`` ("escalate" or "local").
    """

    name = "keywords"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.label = str(config.get("label", "keywords"))
        self.name = f"keywords:{self.label}"
        patterns = config.get("patterns", [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns) or not patterns:
            raise PolicyError(f"gate {self.name}: 'patterns' must be a non-empty list of strings")
        try:
            self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]
        except re.error as e:
            raise PolicyError(f"gate {self.name}: bad pattern: {e}") from None
        self.min_matches = int(config.get("min_matches", 1))
        self.verdict: Verdict = config.get("verdict", "escalate")
        if self.verdict not in ("escalate", "local"):
            raise PolicyError(f"gate {self.name}: verdict must be 'escalate' or 'local'")

    def decide(self, request: Request) -> GateDecision:
        hits = [p.pattern for p in self.patterns if p.search(request.text)]
        if len(hits) >= self.min_matches:
            return GateDecision(self.name, self.verdict, f"{self.label}: matched {', '.join(hits[:3])}")
        return self._pass(f"{self.label}: {len(hits)} of {self.min_matches} cues")


class OutputTypeGate(_GateBase):
    """Route structured outputs: config maps an output type to a verdict (e.g. tool = "escalate")."""

    name = "output_type"

    def decide(self, request: Request) -> GateDecision:
        verdict = self.config.get(request.output_type, "pass")
        if verdict not in ("escalate", "local", "pass"):
            raise PolicyError(
                f"gate output_type: '{request.output_type}' must map to escalate, local or pass"
            )
        return GateDecision(self.name, verdict, f"output type {request.output_type}")


class SafetyGate(_GateBase):
    """Follow the safety guard's verdicts, which come with the request (``edgekit.Assistant`` screens it
    first): a category whose action is 'escalate' escalates; a category named in ``pin_local`` (for
    example ``["pii", "secrets"]``) keeps the request on device whenever the guard flagged it, so it
    never leaves the device even as placeholders. Reasons name categories only.
    """

    name = "safety"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        pin = config.get("pin_local", [])
        if not isinstance(pin, list) or not all(isinstance(c, str) for c in pin):
            raise PolicyError("gate safety: 'pin_local' must be a list of safety category names")
        self.pin_local = frozenset(pin)

    def decide(self, request: Request) -> GateDecision:
        verdicts = request.safety
        pinned = sorted(c for c, action in verdicts.items() if c in self.pin_local and action != "allow")
        if pinned:
            return GateDecision(self.name, "local", f"safety: {', '.join(pinned)} stays on device")
        flagged = sorted(c for c, action in verdicts.items() if action == "escalate")
        if flagged:
            return GateDecision(self.name, "escalate", f"safety: {', '.join(flagged)}")
        return self._pass("no safety escalation")


REGISTRY: dict[str, str] = {
    "context": "edgekit.cascade.gates:ContextGate",
    "keywords": "edgekit.cascade.gates:KeywordGate",
    "output_type": "edgekit.cascade.gates:OutputTypeGate",
    "safety": "edgekit.cascade.gates:SafetyGate",
}


GATE_MODULES_ENV = "EDGEKIT_GATE_MODULES"
"""Comma-separated modules whose gate classes a policy may name as "module:Class" (unset: none)."""


def build_gate(spec: GateSpec) -> Gate:
    """The gate a policy names: a registered one, or a "module:Class" from a module the user allowed in
    ``EDGEKIT_GATE_MODULES`` (a policy file is data: it must not run code nobody chose to trust)."""
    target = REGISTRY.get(spec.kind, spec.kind)
    if ":" not in target:
        import difflib

        close = difflib.get_close_matches(spec.kind, list(REGISTRY), n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Known gates: {', '.join(sorted(REGISTRY))}."
        raise PolicyError(f"unknown gate '{spec.kind}'", hint)
    module, _, cls_name = target.partition(":")
    if spec.kind not in REGISTRY and not _allowed(module):
        raise PolicyError(
            f"gate '{spec.kind}' names code outside edgekit, which a policy may not load by default",
            f"If you trust it, set {GATE_MODULES_ENV}={module} (comma-separated for several).",
        )
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as e:
        raise PolicyError(f"gate '{spec.kind}' cannot be loaded: {e}") from None
    if not isinstance(cls, type) or not callable(getattr(cls, "decide", None)):
        raise PolicyError(f"gate '{spec.kind}' is not a gate class (a class with a decide method)")
    config = {k: v for k, v in spec.model_dump().items() if k != "kind"}
    try:
        gate: Gate = cls(**config)
    except TypeError as e:
        raise PolicyError(f"gate '{spec.kind}': {e}") from None
    return gate


def _allowed(module: str) -> bool:
    import os

    allowed = [m.strip() for m in os.environ.get(GATE_MODULES_ENV, "").split(",") if m.strip()]
    return any(module == m or module.startswith(m + ".") for m in allowed)
