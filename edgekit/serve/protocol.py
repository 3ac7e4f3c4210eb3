"""The seam between the HTTP server and whatever answers: a ``Responder``.

A responder is anything with ``edgekit.Model``'s ``chat`` and ``close``: today a loaded model (or a
``ModelPool`` of copies of one), tomorrow the cascade router. The server only ever calls::

    responder.chat(messages, stream=False, system=None, max_tokens=..., temperature=..., top_p=...,
                   seed=..., stop=...)                     -> Completion
    responder.chat(messages, stream=True, ...)             -> Iterator[Chunk]  (last chunk: finish, usage)
    responder.close()                                      once, at shutdown, after the last call ended

Calls come from worker threads, at most ``concurrency`` at once (``ServeOptions``); a responder that is
not thread-safe (one llama.cpp model) is served with concurrency 1. Closing a chunk iterator early must
stop generation. Input problems are raised as ``InputError``s (HTTP 400); other ``EdgekitError``s give
HTTP 500 (``RemoteError``: 502) with their message.

Extension point: ``ResponseExtras`` turns the final ``Completion`` (or, when streaming, the last ``Chunk``)
into extra top-level fields of the response body, for example a cascade's route and trace id.
OpenAI clients ignore fields they do not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgekit.runtime.types import ChatMessage, Chunk, Completion

if TYPE_CHECKING:
    from edgekit.api import Model


@runtime_checkable
class Responder(Protocol):
    @property
    def name(self) -> str:
        """The model id the server reports (``/v1/models``, the ``model`` field of every response)."""
        ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        system: str | None = None,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Completion | Iterator[Chunk]: ...

    def close(self) -> None: ...


ResponseExtras = Callable[[Completion | Chunk], Mapping[str, Any] | None]
"""Extra top-level response fields from the final Completion (non-streaming) or last Chunk (streaming)."""


if TYPE_CHECKING:  # mypy proves here that a loaded model is a Responder

    def _a_model_is_a_responder(model: Model) -> Responder:
        return model
