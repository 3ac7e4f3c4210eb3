"""What ``Assistant.chat`` returns: the answer and everything that happened on the way to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.assistant.privacy import Restoration
from edgekit.runtime.types import Completion

if TYPE_CHECKING:
    from edgekit.cascade.gates import GateDecision
    from edgekit.schema import ToolCall


@dataclass(frozen=True)
class Finding:
    """One safety verdict that was not ``allow``. The reason never quotes the matched text."""

    layer: str
    category: str
    action: str
    reason: str


@dataclass(frozen=True)
class Answer:
    text: str
    """What the user reads: filtered, with their own redacted values put back."""
    completion: Completion = field(repr=False)
    """The answering tier's output as the model wrote it (placeholders, not values)."""
    route: str
    """'local:<tier>', 'remote:<tier>' or 'degraded:<tier>' (a cascade); 'local:<model>' (one model)."""
    trace_id: str
    finish_reason: str
    """'stop', 'length', 'tool_calls', or 'content_filter' when the safety policy withheld the answer."""
    escalation_reason: str | None = None
    degraded_reason: str | None = None
    gates: tuple[GateDecision, ...] = ()
    rejections: tuple[str, ...] = ()
    """Why each local tier's answer was not accepted, in order."""
    findings: tuple[Finding, ...] = ()
    value: Any = None
    """The parsed JSON value when a schema was asked for."""
    tool_calls: tuple[ToolCall, ...] = ()
    privacy: Restoration = field(default_factory=Restoration)

    @property
    def degraded(self) -> bool:
        return self.degraded_reason is not None

    @property
    def unvetted(self) -> bool:
        """A gate wanted a larger model to answer and none could: the local answer was not vetted."""
        return self.degraded and (self.escalation_reason or "").startswith("gate ")

    @property
    def blocked(self) -> bool:
        return self.finish_reason == "content_filter"

    def route_info(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "escalation_reason": self.escalation_reason,
            "degraded_reason": self.degraded_reason,
            "trace_id": self.trace_id,
        }

    def to_dict(self) -> dict[str, Any]:
        doc = self.completion.to_dict()
        doc["text"], doc["finish_reason"] = self.text, self.finish_reason
        if self.value is not None:
            doc["value"] = self.value
        if self.tool_calls:
            doc["tool_calls"] = [{"name": c.name, "arguments": dict(c.arguments)} for c in self.tool_calls]
        doc["edgekit_route"] = self.route_info()
        doc["safety"] = [vars(f) for f in self.findings]
        if self.privacy.restored or self.privacy.missing or self.privacy.unknown:
            doc["placeholders"] = {k: list(v) for k, v in vars(self.privacy).items()}
        return doc

    def status_line(self) -> str:
        """One line for a terminal: ``[local:tiny]``, ``[remote:remote] reason``, ``[degraded:tiny] ...``."""
        why = self.degraded_reason or self.escalation_reason
        return f"[{self.route}]" + (f" {why}" if why else "")
