"""Safety filters, one per file behind the small ``Filter`` protocol.

A filter reads a text (and the ``Context`` it arrives in) and returns ``Verdict``s: category, proposed
action, spans into the ORIGINAL text, and a reason that never quotes the matched text. Pattern filters
match the normalized text (``normalize.py``) and map spans back.

Streaming: ``window`` is how many trailing characters a stream must hold back so that a match split across
chunks is still caught before any of it is released (the longest match the filter can make, counted in
characters; see ``stream.StreamGuard``). Filters that judge a whole text (the classifier) say
``window = -1``: a stream runs them when it ends.

``Guard`` builds the filters its policy enables (the ONNX classifier only when enabled) and runs them by
name per enforcement point (``guard.LAYER_FILTERS``); ``Guard(filters={"pii": MyPii()})`` replaces one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edgekit.safety.normalize import Normalized, normalize
from edgekit.safety.taxonomy import Layer, Verdict


@dataclass(frozen=True)
class Context:
    """Where a text sits in the request path, with work shared between filters."""

    layer: Layer = "input"
    normalized: Normalized | None = None
    language: str | None = None
    """ISO 639-1 code when known (the language filter sets it for the classifier's thresholds)."""

    def norm(self, text: str) -> Normalized:
        return (
            self.normalized
            if self.normalized is not None and self.normalized.original == text
            else (normalize(text))
        )


class Filter(Protocol):
    name: str
    window: int

    def check(self, text: str, context: Context) -> list[Verdict]: ...
