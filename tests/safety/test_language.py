"""Language by script first: short texts in non-Latin scripts are never taken for English."""

from __future__ import annotations

import pytest

from edgekit.safety.filters import Context
from edgekit.safety.filters.language import LanguageFilter, script_of


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("怎么做蛋糕", "zh"),
        ("今日は雨ですか", "ja"),
        ("오늘 날씨", "ko"),
        ("где вокзал", "ru"),
        ("أين المحطة", "ar"),
        ("स्टेशन कहाँ है", "hi"),
        ("שלום לכם", "he"),
        ("สวัสดีครับ", "th"),
    ],
)
def test_short_texts_are_told_by_their_script(text: str, lang: str) -> None:
    found = LanguageFilter().language(text)
    assert found is not None and found[0] == lang
    (verdict,) = LanguageFilter(supported=["en"]).check(text, Context())
    assert verdict.category == "unsupported_language" and dict(verdict.extra)["language"] == lang


def test_latin_text_with_a_foreign_word_stays_latin() -> None:
    f = LanguageFilter(supported=["en"])
    assert f.language("How do I say 你好 politely?") is None  # short Latin text: no guess, no verdict
    assert not f.check("Please translate the phrase 你好 into English for my homework.", Context())


def test_a_supported_script_language_passes() -> None:
    assert not LanguageFilter(supported=["en", "zh"]).check("怎么做蛋糕", Context())


def test_script_of() -> None:
    assert [script_of(c) for c in "a中カ한я"] == ["LATIN", "HAN", "KANA", "HANGUL", "CYRILLIC"]
