"""Language identification (py3langid, offline, plus the writing system), so policies can treat languages
differently.

Safety filters and classifiers are uneven across languages: a text in a language the policy does not list
as supported gets an ``unsupported_language`` verdict, which a policy usually maps to ``escalate`` (the
larger or remote model, whose safety training covers more languages) or ``block``.

Two signals decide the language. The script comes first: a text written mostly in a script other than
Latin (Han, kana, Hangul, Cyrillic, Arabic, Devanagari, ...) is in one of that script's languages, however
short it is; a statistical guess on three Chinese characters says English as often as not, so for such
texts the guess is used only when it names a language of that script, else the script's most common
language stands in (Han: ``zh``, Cyrillic: ``ru``, ...). Latin-script texts shorter than ``min_chars``
letters, or identified with less than ``min_confidence``, get no verdict: on a few Latin words language id
is a guess, and guessing wrong must not send ordinary short prompts down the slow path.

The detected language is also what the harmful-content classifier's per-language thresholds key on
(``detect``).
"""

from __future__ import annotations

import threading
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Verdict

_IDENTIFIER = None
_LOCK = threading.Lock()

SCRIPT_LANGUAGES: dict[str, tuple[str, ...]] = {
    "HAN": ("zh", "ja"),
    "KANA": ("ja",),
    "HANGUL": ("ko",),
    "CYRILLIC": ("ru", "uk", "bg", "sr", "mk", "be", "kk", "ky", "mn"),
    "ARABIC": ("ar", "fa", "ur", "ps", "ku", "ug"),
    "DEVANAGARI": ("hi", "mr", "ne", "sa"),
    "BENGALI": ("bn", "as"),
    "GURMUKHI": ("pa",),
    "GUJARATI": ("gu",),
    "TAMIL": ("ta",),
    "TELUGU": ("te",),
    "KANNADA": ("kn",),
    "MALAYALAM": ("ml",),
    "SINHALA": ("si",),
    "THAI": ("th",),
    "LAO": ("lo",),
    "KHMER": ("km",),
    "MYANMAR": ("my",),
    "GEORGIAN": ("ka",),
    "ARMENIAN": ("hy",),
    "HEBREW": ("he", "yi"),
    "GREEK": ("el",),
    "ETHIOPIC": ("am",),
}
"""Non-Latin scripts and their languages, the most common first (py3langid's codes)."""


def _identifier() -> Any:
    global _IDENTIFIER
    with _LOCK:
        if _IDENTIFIER is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            _IDENTIFIER = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
        return _IDENTIFIER


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the text's language, by py3langid alone."""
    lang, prob = _identifier().classify(text)
    return str(lang), float(prob)


@lru_cache(maxsize=8192)
def script_of(char: str) -> str:
    """The script of one letter, by its Unicode name: ``LATIN``, ``HAN``, ``KANA``, ``CYRILLIC``, ..."""
    name = unicodedata.name(char, "")
    if name.startswith("CJK") or name.startswith("IDEOGRAPHIC"):
        return "HAN"
    if name.startswith(("HIRAGANA", "KATAKANA")):
        return "KANA"
    head = name.split(" ", 1)[0]
    return head if head in SCRIPT_LANGUAGES else "LATIN" if head == "LATIN" else "OTHER"


def scripts(text: str) -> Counter[str]:
    """Letters per script (an ASCII text's letters are all Latin: no per-letter lookup)."""
    if text.isascii():
        letters = sum(c.isalpha() for c in text)
        return Counter({"LATIN": letters} if letters else {})
    return Counter(script_of(c) for c in text if c.isalpha())


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
        self._last: tuple[str, tuple[str, float] | None] = ("", None)

    def language(self, text: str) -> tuple[str, float] | None:
        """The detected language when it can be told (by script, or a long and confident guess), else
        None. The probability of a script-decided language is the share of letters in that script.

        The last answer is kept: the guard asks once for the classifier's thresholds, then the filter's
        own check asks again for the same text."""
        last = self._last  # one read: another thread may replace it
        if last[0] == text and text:
            return last[1]
        found = self._language(text)
        self._last = (text, found)
        return found

    def _language(self, text: str) -> tuple[str, float] | None:
        counts = scripts(text)
        if counts.get("KANA"):  # Japanese mixes kana with Han; Chinese has no kana
            counts["KANA"] += counts.pop("HAN", 0)
        letters = sum(counts.values())
        if not letters:
            return None
        script, n = max(counts.items(), key=lambda kv: (kv[1], kv[0] != "LATIN"))
        if script in SCRIPT_LANGUAGES and n * 2 > letters - counts.get("OTHER", 0):
            guess, prob = detect(text)
            candidates = SCRIPT_LANGUAGES[script]
            lang = guess if guess in candidates else candidates[0]
            return lang, (prob if guess == lang else n / letters)
        if letters < self.min_chars:
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
