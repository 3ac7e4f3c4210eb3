"""Credentials: API keys and tokens of common providers, private key blocks, JWTs, passwords in URLs.

Provider formats are the documented prefixes (OpenAI ``sk-``, Anthropic ``sk-ant-``, AWS ``AKIA``/``ASIA``,
GitHub ``ghp_``/``github_pat_``, Slack ``xox?-`` and webhooks, Google ``AIza``, Stripe ``sk_live_``, Hugging
Face ``hf_``), with the lengths those providers issue, so ordinary words that share a prefix do not match.
A password inside a URL (``scheme://user:password@host``) is reported as the password only.
"""

from __future__ import annotations

import re

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Span, Verdict

_PEM = r"-----(?:BEGIN|END) (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_RAW: tuple[tuple[str, str], ...] = (
    ("private_key", rf"{_PEM}(?:.*?{_PEM}|.*\Z)"),
    ("anthropic_key", r"\bsk-ant-(?:api|admin|sid)\d{2}-[A-Za-z0-9_-]{32,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}"
                   r"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|\bsk-[A-Za-z0-9]{48}\b"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"),
    ("aws_secret_key", r"(?i:aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?)"
                       r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{60,255})\b"),
    ("slack_token", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}"),
    ("slack_webhook", r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,99}\b"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,40}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url_password", r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s:/@]{1,64}:([^\s@/]{1,128})@[A-Za-z0-9.-]"),
)  # fmt: skip
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(p, re.DOTALL)) for kind, p in _RAW
)


class SecretsFilter:
    name = "secrets"
    window = 64
    """Besides this window, a stream never releases an unfinished word (tokens have no spaces)."""

    def __init__(self, *, action: Action = "redact") -> None:
        self.action = action

    def check(self, text: str, context: Context) -> list[Verdict]:
        norm = context.norm(text)
        spans: list[Span] = []
        for kind, pattern in PATTERNS:
            for m in pattern.finditer(norm.text):
                group = 1 if pattern.groups else 0
                start, end = m.span(group)
                if any(start < s.end and s.start < end for s in spans):
                    continue
                spans.append(Span(start, end, kind))
        if not spans:
            return []
        mapped = tuple(
            sorted((Span(*norm.original_span(s.start, s.end), s.kind) for s in spans), key=lambda s: s.start)
        )
        kinds = sorted({s.kind for s in mapped})
        return [Verdict("secrets", self.action, mapped, f"credential: {', '.join(kinds)}", filter=self.name)]
