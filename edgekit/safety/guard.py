"""The enforcement points, in one place: ``Guard`` runs the policy's filters at each point of the request
path and turns their verdicts into one ``Decision``.

| point | method | filters |
|---|---|---|
| input intake | ``check_input(text)`` | pii, secrets, injection, language, classifier |
| context assembly | ``check_documents(docs)`` | injection (with document cues), pii, secrets, classifier |
| before the model | ``check_prompt(messages)`` | pii, secrets over the assembled prompt |
| during decoding | ``stream()`` | banned sequences (stop generation), pii, secrets |
| after generation | ``check_output(text)``, ``guard_chunks(...)`` | pii, secrets, banned, classifier |
| tool-call arguments | ``check_tool_arguments(name, args)`` | pii, secrets, injection on every string |
| delivery | ``deliver(text)`` | pii, secrets: the last redaction pass before text leaves |

Every verdict's action is decided by the policy (per category, overridable per layer); the strictest one
is the decision's action. Every verdict that is not ``allow`` becomes an audit record (no raw text).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import InputError
from edgekit.safety.audit import AuditFile, AuditSink, AuditTrail, make_record, salt_from_env
from edgekit.safety.filters import Context, Filter
from edgekit.safety.filters.banned import BannedFilter
from edgekit.safety.filters.injection import InjectionFilter
from edgekit.safety.filters.language import LanguageFilter
from edgekit.safety.filters.pii import PiiFilter
from edgekit.safety.filters.secrets import SecretsFilter
from edgekit.safety.normalize import normalize
from edgekit.safety.policy import SafetyPolicy, load_policy
from edgekit.safety.taxonomy import Action, Layer, Span, Verdict, strictest

if TYPE_CHECKING:
    from edgekit.runtime.types import Chunk
    from edgekit.safety.stream import StreamGuard

LAYER_FILTERS: dict[Layer, tuple[str, ...]] = {
    "input": ("pii", "secrets", "injection", "language", "classifier"),
    "context": ("injection", "pii", "secrets", "classifier"),
    "model_input": ("pii", "secrets"),
    "decoding": ("banned", "pii", "secrets"),
    "output": ("pii", "secrets", "banned", "classifier"),
    "tool_call": ("pii", "secrets", "injection"),
    "delivery": ("pii", "secrets"),
}


class SafetyBlockedError(InputError):
    """The safety policy refused a request (HTTP 400, exit 2 in the CLI)."""

    default_hint = "Rephrase the request without the flagged content; see 'Safety' in the README."


@dataclass(frozen=True)
class Decision:
    """What a guard decided at one enforcement point."""

    layer: Layer
    action: Action
    verdicts: tuple[Verdict, ...]
    text: str
    """The text to pass on: with redact verdicts' spans replaced (the original when nothing is redacted)."""
    arguments: Mapping[str, Any] | None = None
    """Tool calls only: the arguments with redactions applied."""
    language: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def escalate(self) -> bool:
        return self.action == "escalate"

    @property
    def reason(self) -> str:
        flagged = [v for v in self.verdicts if v.action != "allow"]
        if not flagged:
            return "no findings"
        return "; ".join(f"{v.category} -> {v.action}: {v.reason}" for v in flagged)

    def signal(self) -> dict[str, str]:
        """Category -> action, the strictest per category: what the cascade's safety gate reads."""
        out: dict[str, Action] = {}
        for v in self.verdicts:
            out[v.category] = strictest([out.get(v.category, "allow"), v.action])
        return dict(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "action": self.action,
            "language": self.language,
            "text": self.text,
            "verdicts": [
                {
                    "category": v.category,
                    "action": v.action,
                    "reason": v.reason,
                    "score": round(v.score, 4),
                    "filter": v.filter,
                    "spans": [{"start": s.start, "end": s.end, "kind": s.kind} for s in v.spans],
                }
                for v in self.verdicts
            ],
        }


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Non-empty spans in order, overlapping ones merged (each keeps the kind of its first span)."""
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if s.start >= s.end:
            continue
        if merged and s.start < merged[-1].end:
            merged[-1] = replace(merged[-1], end=max(merged[-1].end, s.end))
        else:
            merged.append(s)
    return merged


def redact(text: str, spans: Iterable[Span]) -> str:
    """Replace each span (merged where they overlap) with ``[REDACTED:kind]``."""
    out, pos = [], 0
    for s in merge_spans(spans):
        out += [text[pos : s.start], f"[REDACTED:{s.kind or 'text'}]"]
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


@dataclass
class Guard:
    """Runs a safety policy at every enforcement point. Thread-safe once built (filters keep no state).

    ``Guard()`` uses the shipped default policy; ``classifier=False`` leaves the harmful-content
    classifier out even when the policy enables it (no ONNX encoder needed).
    """

    policy: SafetyPolicy = field(default_factory=load_policy)
    audit: AuditSink | None = None
    """Where audit records go: the policy's ``[audit] file`` when set, else an in-memory ``AuditTrail``."""
    classifier: bool = True
    filters: dict[str, Filter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.policy
        if self.audit is None:
            self.audit = AuditFile(p.audit.file) if p.audit.file is not None else AuditTrail()
        built: dict[str, Filter] = {
            "pii": PiiFilter(region=p.pii.region, types=list(p.pii.types) if p.pii.types else None),
            "secrets": SecretsFilter(),
            "injection": InjectionFilter(),
            "language": LanguageFilter(
                supported=p.language.supported,
                min_chars=p.language.min_chars,
                min_confidence=p.language.min_confidence,
            ),
            "banned": BannedFilter(sequences=p.decoding.banned),
        }
        if self.classifier and p.classifier.enabled and "classifier" not in self.filters:
            from edgekit.safety.filters.classifier import HarmClassifier

            built["classifier"] = HarmClassifier(
                head=p.classifier.head,
                threshold=p.classifier.threshold,
                block_threshold=p.classifier.block_threshold,
                thresholds=p.classifier.thresholds,
                max_chars=p.classifier.max_chars,
            )
        self.filters = {**built, **self.filters}
        self._salt = salt_from_env(p.audit.salt_env)

    @classmethod
    def from_policy(cls, path: Path | str | None = None, **kwargs: Any) -> Guard:
        return cls(load_policy(path), **kwargs)

    def warm(self) -> Guard:
        """Load what loads lazily (the classifier's encoder), so a server fails at start, not mid-request."""
        clf = self.filters.get("classifier")
        if clf is not None:
            clf.check("warm up", Context())
        return self

    # --- the enforcement points ----------------------------------------------------------------

    def check(
        self, text: str, layer: Layer = "input", *, filters: Sequence[str] | None = None, audit: bool = True
    ) -> Decision:
        """Run the filters of ``layer`` (or the named ones) on ``text`` and apply the policy.

        ``audit=False`` leaves the audit to the caller (a stream records what it releases, once)."""
        names = LAYER_FILTERS[layer] if filters is None else tuple(filters)
        context = Context(layer=layer, normalized=normalize(text))
        verdicts: list[Verdict] = []
        language = None
        lang_filter = self.filters.get("language")
        if "classifier" in names and isinstance(lang_filter, LanguageFilter):
            found = lang_filter.language(text)
            language = found[0] if found else None
            context = replace(context, language=language)
        for name in names:
            f = self.filters.get(name)
            if f is None:
                continue
            for v in f.check(text, context):
                action = self.policy.action_for(v.category, layer, v.action)
                if v.filter == "classifier" and action == "block":
                    if v.action == "escalate":  # a doubtful flag costs a remote call, not a refusal
                        action = "escalate"
                    elif not self._classifier_trusted(language):
                        action = "escalate"
                        v = replace(
                            v, reason=f"{v.reason}; escalated, not blocked: not validated in '{language}'"
                        )
                verdicts.append(replace(v, action=action))
        return self._decide(layer, text, verdicts, language, audit=audit)

    def check_input(self, text: str) -> Decision:
        return self.check(text, "input")

    def check_documents(self, documents: Sequence[str]) -> list[Decision]:
        """Context assembly: one decision per document; drop the ones whose decision is ``block``."""
        return [self.check(doc, "context") for doc in documents]

    def check_prompt(self, messages: Sequence[Mapping[str, Any]]) -> Decision:
        """Before the model: the assembled prompt (all message contents, in order)."""
        text = "\n".join(str(m.get("content") or "") for m in messages)
        return self.check(text, "model_input")

    def check_output(self, text: str) -> Decision:
        return self.check(text, "output")

    def deliver(self, text: str) -> Decision:
        return self.check(text, "delivery")

    def check_tool_arguments(self, name: str, args: Mapping[str, Any]) -> Decision:
        """Before a tool runs: every string in ``args`` (nested too) passes the tool_call filters.

        The decision's ``arguments`` are ``args`` with redactions applied; ``blocked`` means do not run.
        """
        verdicts: list[Verdict] = []

        def visit(value: Any, path: str) -> Any:
            if isinstance(value, str):
                d = self.check(value, "tool_call")
                verdicts.extend(replace(v, reason=f"{name}({path}): {v.reason}") for v in d.verdicts)
                return d.text
            if isinstance(value, Mapping):
                return {k: visit(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [visit(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return value

        redacted = visit(dict(args), "")
        action = strictest([v.action for v in verdicts])
        text = json.dumps(redacted, ensure_ascii=False)
        return Decision("tool_call", action, tuple(verdicts), text, arguments=redacted)

    def stream(self, layer: Layer = "decoding") -> StreamGuard:
        """A hold-back buffer for streamed output: ``feed(chunk)`` returns what is safe to show."""
        from edgekit.safety.stream import StreamGuard

        return StreamGuard(self, layer)

    def guard_chunks(
        self, chunks: Iterator[Chunk], layer: Layer = "output", decisions: list[Decision] | None = None
    ) -> Iterator[Chunk]:
        """Filter a model's chunk stream; on ``block`` stop generation and end with ``content_filter``.
        ``decisions``: gets the decisions that had findings, once the stream ends."""
        from edgekit.safety.stream import guard_chunks

        return guard_chunks(self, chunks, layer, decisions)

    # --- helpers -----------------------------------------------------------------------------------

    def _classifier_trusted(self, language: str | None) -> bool:
        """Whether a classifier flag in ``language`` may block (unknown language: yes, as in English)."""
        trusted = self.policy.classifier.languages
        return not trusted or language is None or language in trusted

    def record(self, verdict: Verdict, layer: Layer, text: str) -> None:
        """Audit one verdict (its spans index ``text``) unless its action is ``allow``."""
        if verdict.action != "allow" and self.audit is not None:
            self.audit.record(make_record(verdict, layer, text, self._salt))

    def _decide(
        self, layer: Layer, text: str, verdicts: list[Verdict], language: str | None, *, audit: bool = True
    ) -> Decision:
        for v in verdicts if audit else ():
            self.record(v, layer, text)
        spans = [s for v in verdicts if v.action == "redact" for s in v.spans]
        out = redact(text, spans) if spans else text
        return Decision(
            layer, strictest([v.action for v in verdicts]), tuple(verdicts), out, language=language
        )
