"""Streaming: PII split across chunks is still caught, hold-back is bounded, banned text stops generation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.runtime.types import Chunk, Usage
from edgekit.safety.guard import Guard
from edgekit.safety.policy import SafetyPolicy
from edgekit.safety.stream import MAX_WORD

GUARD = Guard(SafetyPolicy.parse("[decoding]\nbanned = ['project falcon']\n"), classifier=False)


def run(pieces: list[str], guard: Guard = GUARD) -> str:
    sg = guard.stream("output")
    shown = "".join(sg.feed(p) for p in pieces)
    return shown + sg.finish()


def test_an_email_fed_one_character_at_a_time_is_redacted() -> None:
    text = "Sure, write to jo.doe@example.com and I will answer."
    assert run(list(text)) == "Sure, write to [REDACTED:email] and I will answer."


def test_a_card_number_split_across_chunks_is_redacted() -> None:
    pieces = ["Your card 4111 11", "11 1111 ", "1111 is on file."]
    assert run(pieces) == "Your card [REDACTED:payment_card] is on file."


def test_text_is_released_once_it_is_safe_not_only_at_the_end() -> None:
    sg = GUARD.stream("output")
    shown = "".join(sg.feed(w + " ") for w in ("word",) * 60)
    assert len(shown) >= 300 - sg.window - 5  # held back: at most the window plus the unfinished word


def test_an_unfinished_word_is_held_back_until_it_ends() -> None:
    sg = GUARD.stream("output")
    key = "AKIAIOSFODNN7EXAMPLE"
    assert "AKIA" not in "".join(sg.feed(c) for c in "x " * 40 + key[:10])
    rest = sg.feed(key[10:] + " done " + "y " * 40) + sg.finish()
    assert "[REDACTED:aws_access_key]" in rest and key not in rest


def test_a_runaway_word_is_released_after_max_word_characters() -> None:
    sg = GUARD.stream("output")
    shown = sg.feed("a" * (MAX_WORD + 200))
    assert shown  # no unbounded buffering


def test_a_banned_sequence_stops_the_stream_before_it_is_shown() -> None:
    sg = GUARD.stream("output")
    shown = "".join(sg.feed(p) for p in ["The plan is called Pro", "ject Fal", "con and it", " goes on"])
    shown += sg.finish()
    assert sg.stopped is not None and sg.stopped.verdicts[0].category == "banned_sequence"
    assert "Falcon" not in shown and "The plan is called" in shown


def test_guard_chunks_closes_the_model_stream_on_block() -> None:
    closed: list[bool] = []

    def model() -> Iterator[Chunk]:
        try:
            for piece in ["Here is Project", " Falcon, ", "more " * 50]:
                yield Chunk(piece)
            yield Chunk("", finish_reason="stop", usage=Usage(3, 50))
        finally:
            closed.append(True)

    out = list(GUARD.guard_chunks(model()))
    assert closed == [True]
    assert out[-1].finish_reason == "content_filter"
    assert "Falcon" not in "".join(c.text for c in out)


def test_guard_chunks_passes_the_final_chunk_through_unchanged() -> None:
    final = Chunk("", finish_reason="stop", usage=Usage(1, 2))
    out = list(GUARD.guard_chunks(iter([Chunk("Hello "), Chunk("world."), final])))
    assert "".join(c.text for c in out) == "Hello world." and out[-1] is final


PII_VALUES = st.sampled_from(
    ["jo.doe@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "+44 20 7946 0958",
     "AKIAIOSFODNN7EXAMPLE", "123-45-6789"]
)  # fmt: skip
WORDS = st.lists(st.sampled_from(["the", "plan", "is", "ok,", "call", "me", "at", "\n", "and", "1", "x."]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=WORDS, value=PII_VALUES, after=WORDS, cuts=st.lists(st.integers(1, 400), max_size=12))
def test_fuzz_random_chunking_never_leaks_and_matches_the_whole_text_result(
    before: list[str], value: str, after: list[str], cuts: list[int]
) -> None:
    text = " ".join([*before, value, *after])
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    shown = run(pieces)
    assert value not in shown
    digits = "".join(c for c in value if c.isdigit())
    assert not digits or digits not in "".join(c for c in shown if c.isdigit())
    assert shown == GUARD.check(text, "output").text


@pytest.mark.parametrize("layer", ["decoding", "output", "delivery"])
def test_every_streaming_layer_redacts(layer: str) -> None:
    sg = GUARD.stream(layer)  # type: ignore[arg-type]
    assert "[REDACTED:email]" in sg.feed("to jo@example.com ") + sg.finish()


def test_a_stream_audits_each_finding_once_with_offsets_into_the_whole_answer() -> None:
    from edgekit.safety.audit import AuditTrail

    trail = AuditTrail()
    guard = Guard(
        SafetyPolicy.parse("[decoding]\nbanned = ['project falcon']\n"), classifier=False, audit=trail
    )
    text = "Hello there, my friend. Write to jo.doe@example.com soon, about Project Falcon and more."
    sg = guard.stream("output")
    for ch in text:
        sg.feed(ch)
    sg.finish()
    records = [(r.category, r.spans) for r in trail.records]
    email = text.index("jo.doe")
    falcon = text.index("Project")
    assert records == [("pii", ((email, email + 18),)), ("banned_sequence", ((falcon, falcon + 14),))]
