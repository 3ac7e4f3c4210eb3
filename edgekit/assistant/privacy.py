"""Placeholders for what the safety guard redacts: a value the user wrote (an e-mail address, a key) is
replaced by a stable token such as ``[EMAIL_1]`` before any model sees the request, and the token is
put back in the answer shown to the user. So a remote tier can write "I sent it to [EMAIL_1]" and the
user reads their own address, while the raw value never leaves the device, nor reaches a trace or an
audit record.

One ``Placeholders`` lives as long as a conversation: the same value gets the same token in every turn,
and a value that comes back in an earlier answer of the history is masked again before it is re-sent.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edgekit.safety.guard import merge_spans
from edgekit.safety.taxonomy import Span

_TOKEN = re.compile(r"\[([A-Z][A-Z0-9_]{0,23})_(\d{1,4})\]")
_LONGEST = 32  # longer than any token: how much a stream holds back while a token may be incomplete


@dataclass(frozen=True)
class Restoration:
    """What putting the user's values back into an answer found (tokens only, never values)."""

    restored: tuple[str, ...] = ()
    """Tokens put back (each once, in order of first appearance)."""
    missing: tuple[str, ...] = ()
    """Tokens sent with the request that the answer does not contain (the model dropped them)."""
    unknown: tuple[str, ...] = ()
    """Token-shaped text in the answer that this conversation never sent (left as written)."""


class Placeholders:
    """Value <-> token for one conversation. Thread-safe."""

    def __init__(self) -> None:
        self._token_of: dict[str, str] = {}
        self._value_of: dict[str, str] = {}
        self._category: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._token_of)

    def token(self, value: str, kind: str, category: str = "pii") -> str:
        with self._lock:
            found = self._token_of.get(value)
            if found is not None:
                return found
            label = re.sub(r"[^A-Z0-9]+", "_", (kind or "value").upper()).strip("_")[:24] or "VALUE"
            n = self._counts.get(label, 0) + 1
            self._counts[label] = n
            token = f"[{label}_{n}]"
            self._token_of[value] = token
            self._value_of[token] = value
            self._category[token] = category
            return token

    def category(self, token: str) -> str | None:
        """The safety category of the value behind ``token`` (pii, secrets, ...)."""
        return self._category.get(token)

    def mask(self, text: str, spans: Iterable[Span], category: Mapping[Span, str] | None = None) -> str:
        """``text`` with each span (merged where they overlap) replaced by its value's token;
        ``category``: the safety category each span was found as (default pii)."""
        out, pos = [], 0
        for s in merge_spans(spans):
            out += [
                text[pos : s.start],
                self.token(text[s.start : s.end], s.kind, (category or {}).get(s, "pii")),
            ]
            pos = s.end
        out.append(text[pos:])
        return self.mask_known("".join(out))

    def mask_known(self, text: str) -> str:
        """``text`` with every value this conversation has a token for replaced (longest first): for
        messages the guard does not screen, such as earlier answers that had the values put back."""
        with self._lock:
            values = sorted(self._token_of, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, self._token_of[value])
        return text

    def restore(self, text: str, sent: Iterable[str] = ()) -> tuple[str, Restoration]:
        """``text`` with this conversation's tokens replaced by their values, and what was found.

        ``sent``: the tokens the request carried, to report the ones the answer dropped."""
        restored: list[str] = []
        unknown: list[str] = []

        def put_back(m: re.Match[str]) -> str:
            token = m.group(0)
            value = self._value_of.get(token)
            if value is None:
                if token not in unknown:
                    unknown.append(token)
                return token
            if token not in restored:
                restored.append(token)
            return value

        out = _TOKEN.sub(put_back, text)
        missing = tuple(t for t in dict.fromkeys(sent) if t not in restored)
        return out, Restoration(tuple(restored), missing, tuple(unknown))

    def tokens_in(self, text: str) -> list[str]:
        return [m.group(0) for m in _TOKEN.finditer(text) if m.group(0) in self._value_of]


class StreamRestorer:
    """Puts values back into streamed text without ever showing half a token: text from an unclosed
    ``[`` is held until the token is complete or cannot be one."""

    def __init__(self, placeholders: Placeholders) -> None:
        self.placeholders = placeholders
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < _LONGEST:
            text, self._held = text[:cut], text[cut:]
        else:
            self._held = ""
        return self.placeholders.restore(text)[0]

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.placeholders.restore(text)[0]
