"""Normalization: obfuscation folds away, and spans map back to the characters the user sent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgekit.safety.normalize import normalize


def test_zero_width_bidi_and_format_characters_are_removed() -> None:
    text = "ig\u200bno\u200dre\u202e all\u2066 prev\ufeffious"
    assert normalize(text).text == "ignore all previous"


def test_homoglyphs_and_fullwidth_fold_to_latin() -> None:
    assert normalize("\u0456gn\u043er\u0435").text == "ignore"  # Cyrillic i, o, e lookalikes
    assert normalize("\u03bfpen").text == "open"  # Greek omicron
    assert normalize("\uff49\uff47\uff4e\uff4f\uff52\uff45 \uff11\uff12").text == "ignore 12"  # fullwidth


def test_offsets_point_into_the_original_text() -> None:
    original = "mail: j\u200bo\uff20ex\u0430mple.com!"
    norm = normalize(original)
    start = norm.text.index("jo@")
    end = norm.text.index(".com") + 4
    o_start, o_end = norm.original_span(start, end)
    assert original[o_start:o_end] == "j\u200bo\uff20ex\u0430mple.com"


def test_a_character_that_expands_maps_back_to_itself() -> None:
    norm = normalize("a\ufb01b")  # the fi ligature becomes two letters
    assert norm.text == "afib"
    assert norm.original_span(1, 3) == (1, 2)


@given(st.text(max_size=200))
def test_fuzz_the_offset_map_is_total_and_monotonic(text: str) -> None:
    norm = normalize(text)
    assert len(norm.origin) == len(norm.text)
    assert list(norm.origin) == sorted(norm.origin)
    assert all(0 <= i < len(text) for i in norm.origin)
    for start in range(0, len(norm.text), 7):
        s, e = norm.original_span(start, min(len(norm.text), start + 5))
        assert 0 <= s <= e <= len(text)
