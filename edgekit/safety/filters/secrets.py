"""Credentials: API keys and tokens of common providers, private key blocks, JWTs, passwords in URLs.

Provider formats are the documented prefixes (OpenAI ``sk-``/``sk-proj-``, Anthropic ``sk-ant-``, AWS
``AKIA``/``ASIA``, GitHub ``ghp_``/``github_pat_``, GitLab ``glpat-``, Slack ``xox?-`` and webhooks, Google
``AIza``/``GOCSPX-``, Stripe ``sk_live_``, Hugging Face ``hf_``, npm, PyPI, Groq, xAI, OpenRouter, Perplexity,
Replicate, SendGrid, DigitalOcean, Twilio), with the lengths those providers issue. Where a prefix is
followed by a key of any length (``sk-proj-``, ``sk-ant-api03-``, ``github_pat_``, ...), the rest must look
generated (mixed case or digits, not hyphenated words), so ordinary words that share a prefix do not match.
A password inside a URL (``scheme://user:password@host``) is reported as the password only.
"""

from __future__ import annotations

import re

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Span, Verdict

_PEM = r"-----(?:BEGIN|END) (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_B = r"(?![A-Za-z0-9_-])"  # a key ends where its alphabet does
_RAW: tuple[tuple[str, str], ...] = (
    ("private_key", rf"{_PEM}(?:.*?{_PEM}|.*\Z)"),
    ("anthropic_key", r"\bsk-ant-(?:api|admin|sid|oat|ort)\d{2}-[A-Za-z0-9_-]{20,}"),
    ("openrouter_key", rf"\bsk-or-v1-[a-f0-9]{{64}}{_B}"),
    ("openai_key", rf"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{{20,}}T3BlbkFJ[A-Za-z0-9_-]{{20,}}"
                   rf"|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{{20,}}|\bsk-[A-Za-z0-9]{{48}}{_B}"),
    ("api_key", rf"\bsk-[A-Za-z0-9]{{32,}}{_B}"),  # other providers' "sk-" keys (DeepSeek, Moonshot, ...)
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"),
    ("aws_secret_key", r"(?i:aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?)"
                       r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{30,255})\b"),
    ("gitlab_token", rf"\b(?:glpat|gldt|glptt|glrt|glcbt|glft|glsoat)-[A-Za-z0-9_-]{{20,}}{_B}"),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,250}|\bxapp-\d-[A-Za-z0-9-]{10,250}"),
    ("slack_webhook", r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("google_oauth", rf"\bGOCSPX-[A-Za-z0-9_-]{{28}}{_B}|\bya29\.[A-Za-z0-9_-]{{30,}}{_B}"),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,247}\b|\bwhsec_[A-Za-z0-9]{32,}\b"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,40}\b"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", rf"\bpypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{{50,}}{_B}"),
    ("groq_key", r"\bgsk_[A-Za-z0-9]{40,}\b"),
    ("xai_key", r"\bxai-[A-Za-z0-9]{70,}\b"),
    ("perplexity_key", r"\bpplx-[A-Za-z0-9]{40,}\b"),
    ("replicate_token", r"\br8_[A-Za-z0-9]{37}\b"),
    ("sendgrid_key", rf"\bSG\.[A-Za-z0-9_-]{{22}}\.[A-Za-z0-9_-]{{43}}{_B}"),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    ("twilio_key", r"\bSK[0-9a-f]{32}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("url_password", r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s:/@]{1,64}:([^\s@/]{1,128})@[A-Za-z0-9.-]"),
)  # fmt: skip
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(p, re.DOTALL)) for kind, p in _RAW
)
RANDOM_BODY = frozenset(
    {"anthropic_key", "openai_key", "api_key", "github_token", "gitlab_token", "groq_key", "xai_key",
     "perplexity_key", "npm_token", "replicate_token", "huggingface_token"}
)  # fmt: skip
"""Kinds whose prefix is short or common enough that the rest must look random, not like words."""
_PREFIX = re.compile(r"^(?:sk-ant-[a-z]+\d\d-|sk-(?:proj|svcacct|admin|None)-|sk-|github_pat_|[a-z0-9]+[_-])")


def _looks_random(key: str) -> bool:
    """A generated key mixes at least two of upper case, lower case and digits, and is not mostly
    hyphenated words ("sk-proj-management-plan-for-the-quarter")."""
    body = _PREFIX.sub("", key, count=1)
    classes = any(c.isupper() for c in body) + any(c.islower() for c in body) + any(c.isdigit() for c in body)
    if classes < 2:
        return False
    words = sum(len(w) for w in re.split(r"[-_]", body) if len(w) >= 2 and w.isalpha() and w.islower())
    return words < len(body) / 2


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
                if kind in RANDOM_BODY and not _looks_random(m.group(group)):
                    continue
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
