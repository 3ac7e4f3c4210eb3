"""Multi-turn chat over an Assistant: history, system prompt, placeholders that hold across turns, the
route decided per turn, and the oldest turns dropped when the history no longer fits the context."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from edgekit.assistant.answer import Answer
from edgekit.assistant.assistant import AnswerStream, Assistant
from edgekit.assistant.privacy import Placeholders
from edgekit.errors import EdgekitError
from edgekit.runtime.types import ChatMessage, Chunk

if TYPE_CHECKING:
    from edgekit.api import Model


class ChatSession:
    """``ChatSession(assistant)`` or ``ChatSession(model)`` (one model, no cascade, no guard)."""

    def __init__(self, assistant: Assistant | Model, system: str | None = None) -> None:
        self.assistant = assistant if isinstance(assistant, Assistant) else Assistant(assistant)
        self.system = system
        self.history: list[ChatMessage] = []
        self.placeholders = Placeholders()
        self.last: Answer | None = None
        """The answer of the last turn (its route, reasons and findings)."""
        self.dropped = 0
        """Messages left out of the history so far to fit the context window."""

    def reset(self) -> None:
        self.history.clear()
        self.placeholders = Placeholders()
        self.last = None

    def messages(self) -> list[ChatMessage]:
        head: list[ChatMessage] = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def ask(self, text: str, **params: Any) -> Answer:
        """The whole answer to ``text`` at once."""
        for _ in self.send(text, **params):
            pass
        assert self.last is not None
        return self.last

    def send(self, text: str, **params: Any) -> Generator[Chunk, None, None]:
        """Stream the reply to ``text``. The reply joins the history even if the caller stops early.

        If the request is refused or generation cannot start, the user turn is taken back so the session
        stays usable."""
        self.history.append({"role": "user", "content": text})
        self._fit(int(params.get("max_tokens", 256)))
        try:
            stream = self.assistant.chat(
                self.messages(), stream=True, placeholders=self.placeholders, **params
            )
        except EdgekitError:
            self.history.pop()
            raise
        assert isinstance(stream, AnswerStream)
        return self._record(stream)

    def _fit(self, max_tokens: int) -> None:
        """Drop the oldest turns (never the new message or the system prompt) until prompt and answer fit."""
        n_ctx = self.assistant.n_ctx
        if n_ctx <= 0:
            return
        while len(self.history) > 1 and self.assistant.prompt_tokens(self.messages()) + max_tokens > n_ctx:
            self.history.pop(0)
            self.dropped += 1
            while len(self.history) > 1 and self.history[0]["role"] != "user":
                self.history.pop(0)
                self.dropped += 1

    def _record(self, stream: AnswerStream) -> Generator[Chunk, None, None]:
        parts: list[str] = []
        try:
            for chunk in stream:
                parts.append(chunk.text)
                yield chunk
        finally:
            stream.close()
            self.last = stream.answer
            self.history.append({"role": "assistant", "content": "".join(parts)})
