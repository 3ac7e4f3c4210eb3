"""Language identification (py3langid, offline), so policies can treat languages differently.

Safety filters and classifiers are uneven across languages: a text in a language the policy does not list
as supported gets an ``unsupported_language`` verdict, which a policy usually maps to ``escalate`` (the
larger or remote model, whose safety training covers more languages) or ``block``. Texts shorter than
``min_chars`` letters, or identified with less than ``min_confidence``, get no verdict: language id on
a few words is a guess, and guessing wrong must not send ordinary short prompts down the slow path.

The detected language is also what the harmful-content classifier's per-language thresholds key on
(``detect``).
"""

from __future__ import annotations

import threading
from typing import Any

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Verdict

_IDENTIFIER = None
_LOCK = threading.Lock()


def _identifier() -> Any:
    global _IDENTIFIER
    with _LOCK:
        if _IDENTIFIER is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            _IDENTIFIER = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
        return _IDENTIFIER


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language."""
    lang, prob = _identifier().classify(text)
    return str(lang), float(prob)


class LanguageFilter:
    name = "language"
    window = -1

    def __init__(
        self,
        *,
        supported: list[str] | tuple[str, ...] = ("en",),
        action: Action = "escalate",
        min_chars: int = 20,
        min_confidence: float = 0.8,
    ) -> None:
        self.supported = tuple(supported)
        self.action = action
        self.min_chars = min_chars
        self.min_confidence = min_confidence

    def language(self, text: str) -> tuple[str, float] | None:
        """The detected language when the guess is trustworthy (long enough, confident), else None."""
        if sum(c.isalpha() for c in text) < self.min_chars:
            return None
        lang, prob = detect(text)
        return (lang, prob) if prob >= self.min_confidence else None

    def check(self, text: str, context: Context) -> list[Verdict]:
        found = self.language(text)
        if found is None or found[0] in self.supported:
            return []
        lang, prob = found
        return [
            Verdict(
                "unsupported_language",
                self.action,
                (),
                f"language '{lang}' (p={prob:.2f}) is not a supported one ({', '.join(self.supported)})",
                score=prob,
                filter=self.name,
                extra=(("language", lang),),
            )
        ]
