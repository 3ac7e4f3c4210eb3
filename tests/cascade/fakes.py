"""Fakes for the logic around the router's seams: models with scripted answers and confidences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import RemoteError
from edgekit.runtime.types import ChatMessage, Completion, Timings, TokenSignal, Usage


def completion(text: str, prob: float, *, backend: str = "fake") -> Completion:
    words = text.split() or [""]
    signals = tuple(TokenSignal(w, prob, 0.5 if prob > 0.5 else 3.0) for w in words)
    return Completion(
        text, "stop", Usage(10, len(words)), Timings(0.01, 0.02, len(words)), "fake", backend, signals
    )


@dataclass
class FakeModel:
    answer: str = "Paris."
    prob: float = 0.95
    n_ctx: int = 2048
    fail: Callable[[], RemoteError] | None = None
    calls: list[list[ChatMessage]] = field(default_factory=list)
    name: str = "fake"
    closed: bool = False

    def prompt_tokens(self, msgs: Sequence[ChatMessage]) -> int:
        return sum(len(m["content"].split()) + 4 for m in msgs)

    def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
        self.calls.append(list(msgs))
        if self.fail is not None:
            raise self.fail()
        return completion(self.answer, self.prob, backend=self.name)

    def close(self) -> None:
        self.closed = True
