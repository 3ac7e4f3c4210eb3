"""Prompt injection and jailbreak cues, in user input and in documents added to the prompt.

Cues are phrasings that try to override the system's instructions ("ignore all previous instructions"),
unlock a persona without rules ("you are now DAN", "developer mode"), extract hidden instructions ("print
your system prompt"), or, inside a retrieved document, speak to the model instead of the reader (fake
``system:`` turns, chat-template tags, "AI assistant, you must now ..."). The last group only counts in
the ``context`` layer, where such text has no business being. Several languages; matching runs on the
normalized text, so spacing tricks and lookalike letters do not hide a cue.
"""

from __future__ import annotations

import re

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Span, Verdict

_PRIOR = (
    r"(?:all |any |the |your |my |these |those )*"
    r"(?:previous|prior|above|earlier|preceding|former|original|initial)"
)
_RULES = r"(?:instructions?|prompts?|rules|directions|guidelines|guidance|commands|context|messages?)"
_LIMITS = r"(?:restrictions|filters|limitations|guidelines|censorship)"
_CUES = (
    ("override", rf"\b(?:ignore|disregard|forget|skip|override|bypass|neglect)\s+{_PRIOR}\s+{_RULES}"),
    ("override", r"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+"
                 r"(?:you were told|above|before|so far)"),
    ("override", r"\bignoriere?\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+(?:anweisungen|regeln)"),
    ("override", r"\bignore[rsz]?\s+(?:toutes\s+)?les\s+(?:instructions|consignes|règles)\s+"
                 r"(?:précédentes|ci-dessus)"),
    ("override", r"\bignora\s+(?:todas\s+)?las\s+(?:instrucciones|reglas)\s+(?:anteriores|previas)"),
    ("override", r"\b(?:new|updated|real)\s+(?:system\s+)?instructions?\s*:"),
    ("jailbreak", r"\b(?:you are|you're|act as|pretend (?:to be|you are))\s+(?:now\s+)?"
                  r"(?:DAN|STAN|AIM|an? unrestricted|an? unfiltered|jailbroken|in developer mode|evil)\b"),
    ("jailbreak", r"\bdo anything now\b|\bdeveloper mode (?:enabled|on)\b|\bjailbreak(?:ed)? mode\b"),
    ("jailbreak", rf"\b(?:without|no|free of|ignore)\s+(?:any\s+)?(?:ethical |moral |safety |content )?"
                  rf"{_LIMITS}\b.{{0,40}}\b(?:answer|respond|reply|tell)"),
    ("jailbreak", rf"\b(?:answer|respond|reply)\b.{{0,40}}\bwithout\s+(?:any\s+)?"
                  rf"(?:ethical |moral |safety )?{_LIMITS}\b"),
    ("exfiltration", r"\b(?:reveal|print|show|repeat|output|leak|tell me)\s+(?:me\s+)?(?:your|the)\s+"
                     r"(?:full\s+|entire\s+|hidden\s+|secret\s+|original\s+)?(?:system prompt|"
                     r"system message|hidden instructions|initial instructions|instructions above)"),
)  # fmt: skip
_DOCUMENT_CUES = (
    ("fake_turn", r"^\s*(?:system|assistant)\s*:\s*\S|<\|?(?:im_start|system|im_end)\|?>|\[/?INST\]"
                  r"|<</?SYS>>"),
    ("addressed_to_model", r"\b(?:AI|assistant|language model|LLM|chatbot)s?\s*[,:]?\s*"
                           r"(?:you must|you should|please|now)\s+"
                           r"(?:ignore|disregard|reply|respond|say|tell|send|forward|include)"),
    ("addressed_to_model", r"\bwhen (?:an? )?(?:AI|assistant|language model|LLM)\s+"
                           r"(?:reads|processes|summari[sz]es)"),
)  # fmt: skip
CUES = tuple((label, re.compile(p, re.IGNORECASE)) for label, p in _CUES)
DOCUMENT_CUES = tuple((label, re.compile(p, re.IGNORECASE | re.MULTILINE)) for label, p in _DOCUMENT_CUES)


class InjectionFilter:
    name = "injection"
    window = 160

    def __init__(self, *, action: Action = "escalate") -> None:
        self.action = action

    def check(self, text: str, context: Context) -> list[Verdict]:
        norm = context.norm(text)
        t = norm.text
        cues = CUES + (DOCUMENT_CUES if context.layer == "context" else ())
        spans: list[Span] = []
        for label, pattern in cues:
            for m in pattern.finditer(t):
                spans.append(Span(*norm.original_span(m.start(), m.end()), label))
        if not spans:
            return []
        labels = sorted({s.kind for s in spans})
        where = "added document" if context.layer == "context" else "text"
        reason = f"prompt injection cues in the {where}: {', '.join(labels)}"
        return [
            Verdict(
                "prompt_injection",
                self.action,
                tuple(sorted(spans, key=lambda s: s.start)),
                reason,
                filter=self.name,
            )
        ]
