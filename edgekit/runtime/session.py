"""Multi-turn chat state: history, system prompt, and what to keep when a reply is interrupted."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from edgekit.errors import EdgekitError
from edgekit.runtime.types import ChatMessage, Chunk

if TYPE_CHECKING:
    from edgekit.api import Model


class ChatSession:
    def __init__(self, model: Model, system: str | None = None) -> None:
        self.model = model
        self.system = system
        self.history: list[ChatMessage] = []

    def reset(self) -> None:
        self.history.clear()

    def messages(self) -> list[ChatMessage]:
        head: list[ChatMessage] = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def send(self, text: str, **params: Any) -> Generator[Chunk, None, None]:
        """Stream the reply to ``text``. The reply joins the history even if the caller stops early.

        If generation cannot start (for example the history no longer fits the context), the user turn
        is taken back so the session stays usable.
        """
        self.history.append({"role": "user", "content": text})
        try:
            stream = self.model.chat(self.messages(), stream=True, **params)
        except EdgekitError:
            self.history.pop()
            raise
        return self._record(stream)

    def _record(self, stream: Iterator[Chunk]) -> Generator[Chunk, None, None]:
        parts: list[str] = []
        try:
            for chunk in stream:
                parts.append(chunk.text)
                yield chunk
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
            self.history.append({"role": "assistant", "content": "".join(parts)})
