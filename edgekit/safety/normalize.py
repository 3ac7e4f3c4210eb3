# ruff: noqa: RUF001, RUF002  (lookalike characters are this module's subject)
"""Normalization before matching, with an offset map back into the original text.

Trivial obfuscation must not pass a filter: fullwidth or compatibility forms (NFKC), zero-width and
bidirectional-control characters hidden between letters, and lookalike letters from other scripts
(Cyrillic ``а``, Greek ``ο``) in a Latin word. Filters match the normalized text, and every span they
report is mapped back through ``Normalized.original_span`` so redaction replaces the characters the user
actually sent.

NFKC is applied per character, so each normalized character knows which original character it came
from (a character may expand, e.g. ``ﬁ`` -> ``fi``; both map to the ligature). Combining marks that NFKC
would compose with the previous character are kept as they come: matching is on ASCII-like structure, and
per-character mapping keeps offsets exact.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Zero-width and invisible formatting characters, and bidi controls (Trojan-source style reordering).
INVISIBLE = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u200b\u200c\u200d\u200e\u200f"
    "\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b"
    "\u206c\u206d\u206e\u206f\u3164\ufe00\ufe01\ufe02\ufe03\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a"
    "\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f\ufeff\uffa0"
)

# Lookalikes of Latin letters and digits (after NFKC, which already folds fullwidth forms).
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԝ": "w",
    "ɡ": "g", "ӏ": "l", "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K",
    "М": "M", "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "Ԝ": "W", "Ӏ": "l",
    # Greek
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "ω": "w", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin and symbol lookalikes NFKC leaves alone
    "ı": "i", "ȷ": "j", "ℓ": "l", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-", "＠": "@",
    "․": ".", "﹫": "@",
}  # fmt: skip


@dataclass(frozen=True)
class Normalized:
    """The normalized text and, for each of its characters, the index of the original character."""

    original: str
    text: str
    origin: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of the normalized text to the smallest original span covering it."""
        if start >= end or not self.origin:
            pos = self.origin[start] if start < len(self.origin) else len(self.original)
            return pos, pos
        return self.origin[start], self.origin[end - 1] + 1


def _fold(ch: str) -> str:
    if ch in INVISIBLE:
        return ""
    cat = unicodedata.category(ch)
    if cat == "Cf":  # any other format control (tags, interlinear annotations)
        return ""
    if ch.isascii():
        return ch
    folded = unicodedata.normalize("NFKC", ch)
    return "".join(HOMOGLYPHS.get(c, c) for c in folded)


def normalize(text: str) -> Normalized:
    if text.isascii():  # nothing to fold: the common case on every streamed chunk
        return Normalized(text, text, tuple(range(len(text))))
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch < "\x80":
            out.append(ch)
            origin.append(i)
            continue
        folded = _fold(ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return Normalized(text, "".join(out), tuple(origin))
