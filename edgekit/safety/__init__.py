"""On-device safety: filters with a stable taxonomy, a TOML policy, and one guard for every enforcement point.

    import edgekit
    guard = edgekit.Guard()                      # the shipped policy (recipes/safety/default.toml)
    d = guard.check_input("Mail me at jo@example.com")
    d.action, d.text                             # 'redact', 'Mail me at [REDACTED:email]'
    sg = guard.stream()                          # streamed output: hold back just enough, redact, stop
    shown = sg.feed(chunk) ... + sg.finish()

Filters (``filters/``, one per file): PII, secrets, prompt injection, language, banned sequences and the
classifier (the int8 multilingual-e5-small encoder with trained hazard, jailbreak and injection heads).
Text is normalized first (``normalize``): NFKC, invisible characters, lookalike letters; spans always
point into the original text.
"""

from edgekit.safety.audit import AuditFile, AuditRecord, AuditTrail
from edgekit.safety.filters import Context, Filter
from edgekit.safety.guard import Decision, Guard, SafetyBlockedError, redact
from edgekit.safety.normalize import Normalized, normalize
from edgekit.safety.policy import SafetyPolicy, SafetyPolicyError, load_policy
from edgekit.safety.stream import StreamGuard
from edgekit.safety.taxonomy import ACTIONS, CATEGORIES, HAZARDS, LAYERS, Span, Verdict

__all__ = [
    "ACTIONS",
    "CATEGORIES",
    "HAZARDS",
    "LAYERS",
    "AuditFile",
    "AuditRecord",
    "AuditTrail",
    "Context",
    "Decision",
    "Filter",
    "Guard",
    "Normalized",
    "SafetyBlockedError",
    "SafetyPolicy",
    "SafetyPolicyError",
    "Span",
    "StreamGuard",
    "Verdict",
    "load_policy",
    "normalize",
    "redact",
]
