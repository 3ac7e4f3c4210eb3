"""The seam between ``edgekit.Assistant`` and whatever answers: an ``Engine``.

An engine is anything with ``edgekit.Model``'s ``chat`` and ``close``: a loaded model, the cascade router
(which the assistant asks for its route too), a test's fake. The assistant runs safety, schema and tools
around it, and only ever calls::

    engine.chat(messages, stream=False, system=None, max_tokens=..., temperature=..., top_p=...,
                   seed=..., stop=...)                     -> Completion
    engine.chat(messages, stream=True, ...)             -> Iterator[Chunk]  (last chunk: finish, usage)
    engine.close()                                         once, at shutdown, after the last call ended

``schema=`` is passed too when an answer must match one. Calls may come from several threads: an
assistant gives each call a free copy of its engines, so an engine that is not thread-safe (one
llama.cpp model) must be given once per concurrent call. Closing a chunk iterator early must
stop generation. Input problems are raised as ``InputError``s (HTTP 400); other ``EdgekitError``s give
HTTP 500 (``RemoteError``: 502) with their message.

"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from edgekit.runtime.types import ChatMessage, Chunk, Completion

if TYPE_CHECKING:
    from edgekit.api import Model


@runtime_checkable
class Engine(Protocol):
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


@runtime_checkable
class CountsTokens(Protocol):
    """An engine may also count a prompt's tokens (``edgekit.Model``, the router do): ``ChatSession``
    trims history by it; for one that cannot, the assistant estimates."""

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int: ...


if TYPE_CHECKING:  # mypy proves here that a loaded model is a Responder

    def _a_model_is_an_engine(model: Model) -> Engine:
        return model
