"""Placeholders for redacted values: stable tokens per conversation, masking, restoring, and streams that
never show half a token."""

from __future__ import annotations

from edgekit.assistant.privacy import Placeholders, Restoration, StreamRestorer
from edgekit.safety.taxonomy import Span

EMAIL = "jo.doe@example.com"


def test_the_same_value_gets_the_same_token_across_calls() -> None:
    ph = Placeholders()
    first = ph.token(EMAIL, "email")
    assert first == "[EMAIL_1]"
    assert ph.token(EMAIL, "email") == first
    assert ph.mask(f"write to {EMAIL}", [Span(9, 9 + len(EMAIL), "email")]) == "write to [EMAIL_1]"
    assert ph.mask(f"{EMAIL} again", [Span(0, len(EMAIL), "email")]) == "[EMAIL_1] again"
    assert len(ph) == 1


def test_kinds_are_numbered_separately() -> None:
    ph = Placeholders()
    assert ph.token("a@example.com", "email") == "[EMAIL_1]"
    assert ph.token("+1 202 555 0101", "phone") == "[PHONE_1]"
    assert ph.token("b@example.com", "email") == "[EMAIL_2]"
    assert ph.token("4111 1111 1111 1111", "payment_card") == "[PAYMENT_CARD_1]"
    assert ph.token("x", "") == "[VALUE_1]"
    assert len(ph) == 5


def test_mask_merges_overlapping_spans_into_one_token() -> None:
    ph = Placeholders()
    text = f"Mail {EMAIL} now"
    end = 5 + len(EMAIL)
    masked = ph.mask(text, [Span(8, 12, "name"), Span(5, end, "email"), Span(10, end, "other")])
    assert masked == "Mail [EMAIL_1] now"
    assert ph.restore(masked)[0] == text
    assert len(ph) == 1


def test_mask_ignores_empty_spans_and_keeps_the_rest() -> None:
    ph = Placeholders()
    assert ph.mask("nothing here", [Span(3, 3, "email")]) == "nothing here"
    assert len(ph) == 0


def test_mask_known_masks_values_in_other_text_longest_first() -> None:
    ph = Placeholders()
    short, long = "ann@example.com", "joann@example.com"
    assert ph.token(short, "email") == "[EMAIL_1]"
    assert ph.token(long, "email") == "[EMAIL_2]"
    out = ph.mask_known(f"Earlier I wrote to {long} and to {short}.")
    assert out == "Earlier I wrote to [EMAIL_2] and to [EMAIL_1]."
    assert "example.com" not in out


def test_mask_also_masks_known_values_outside_the_spans() -> None:
    ph = Placeholders()
    ph.token(EMAIL, "email")
    assert ph.mask(f"cc {EMAIL}", []) == "cc [EMAIL_1]"


def test_restore_reports_restored_missing_and_unknown_tokens() -> None:
    ph = Placeholders()
    email = ph.token(EMAIL, "email")
    phone = ph.token("+1 202 555 0101", "phone")
    text, found = ph.restore(f"Sent to {email}; see [EMAIL_9].", sent=(email, phone))
    assert text == f"Sent to {EMAIL}; see [EMAIL_9]."
    assert found == Restoration(restored=(email,), missing=(phone,), unknown=("[EMAIL_9]",))


def test_restore_without_tokens_changes_nothing() -> None:
    ph = Placeholders()
    ph.token(EMAIL, "email")
    assert ph.restore("No tokens [here] or [lower_1].") == ("No tokens [here] or [lower_1].", Restoration())


def test_a_duplicated_token_is_restored_at_every_occurrence() -> None:
    ph = Placeholders()
    token = ph.token(EMAIL, "email")
    text, found = ph.restore(f"{token}, yes {token}, and {token}.", sent=(token,))
    assert text == f"{EMAIL}, yes {EMAIL}, and {EMAIL}."
    assert found.restored == (token,) and found.missing == () and found.unknown == ()


def test_tokens_in_lists_only_this_conversations_tokens() -> None:
    ph = Placeholders()
    token = ph.token(EMAIL, "email")
    assert ph.tokens_in(f"{token} and [EMAIL_2] and {token}") == [token, token]


def test_a_stream_never_shows_half_a_token() -> None:
    ph = Placeholders()
    ph.token(EMAIL, "email")
    r = StreamRestorer(ph)
    first = r.feed("Write to [EMA")
    assert first == "Write to "
    assert "[" not in first
    second = r.feed("IL_1] now")
    assert second == f"{EMAIL} now"
    assert r.flush() == ""
    assert first + second == f"Write to {EMAIL} now"


def test_a_stream_restores_a_token_split_one_character_at_a_time() -> None:
    ph = Placeholders()
    ph.token(EMAIL, "email")
    r = StreamRestorer(ph)
    shown = []
    for ch in "To [EMAIL_1], ok":
        out = r.feed(ch)
        assert "[EM" not in out and "_1]" not in out
        shown.append(out)
    shown.append(r.flush())
    assert "".join(shown) == f"To {EMAIL}, ok"


def test_a_lone_bracket_that_never_closes_is_released_by_flush() -> None:
    ph = Placeholders()
    ph.token(EMAIL, "email")
    r = StreamRestorer(ph)
    shown = r.feed("Use a list [1, 2")
    assert shown == "Use a list "
    shown += r.feed(" and so on")
    shown += r.flush()
    assert shown == "Use a list [1, 2 and so on"


def test_a_bracket_too_far_back_to_be_a_token_is_not_held() -> None:
    ph = Placeholders()
    r = StreamRestorer(ph)
    text = "[" + "x" * 40
    assert r.feed(text) == text
    assert r.flush() == ""
