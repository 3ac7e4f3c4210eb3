"""UTF-8 reassembly of token pieces: split characters wait for their last byte, a character cut by the
token limit is dropped, bytes that are never UTF-8 are marked."""

from __future__ import annotations

from edgekit.runtime.decoding import Utf8Stream


def test_a_character_split_across_pieces_is_shown_whole() -> None:
    raw = "🎉 café 日本".encode()
    stream = Utf8Stream()
    shown = [stream.feed(raw[i : i + 1]) for i in range(len(raw))]
    assert "".join(shown) + stream.flush() == "🎉 café 日本"
    assert "\ufffd" not in "".join(shown)


def test_a_character_cut_by_the_token_limit_is_dropped_not_replaced() -> None:
    stream = Utf8Stream()
    assert stream.feed("ok 🎉".encode()[:-2]) == "ok "
    assert stream.flush() == ""


def test_bytes_that_are_never_utf8_are_marked() -> None:
    stream = Utf8Stream()
    assert stream.feed(b"a\xffb") == "a\ufffdb"
    assert stream.flush() == ""
