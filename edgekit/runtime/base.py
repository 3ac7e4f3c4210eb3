"""The Backend seam: one small protocol that llama.cpp, onnxruntime and remote HTTP implement.

A backend turns chat messages into a stream of ``Chunk``s. ``stream`` is the one method to write;
``chat`` is derived from it by ``collect``. Local backends are steerable (they expose per-token
signals and, later, grammars); the remote backend is a black box whose output is validated afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edgekit.runtime.types import ChatMessage, Chunk, Completion, GenerationParams, collect


@dataclass(frozen=True)
class Capabilities:
    grammar: bool = False
    logprobs: bool = False
    stream: bool = True
    local: bool = True
    structured: str = "validate"
    """How a JSON schema is enforced: 'grammar' (constrained decoding), 'response_format' (asked of a
    remote endpoint, then validated) or 'validate' (prompted, validated and repaired afterwards)."""


@runtime_checkable
class Backend(Protocol):
    name: str
    """Backend kind: 'llama.cpp', 'onnxruntime' or 'remote'."""
    model_id: str
    """The model this backend serves (lock name, file name or remote model id)."""
    capabilities: Capabilities
    n_ctx: int
    """Context window in tokens (0 when unknown, as for most remotes)."""

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        """Yield chunks as they are produced; the last one carries finish_reason and usage.

        Raises ContextOverflowError before generating when the prompt does not fit the context.
        Closing the iterator early (break, Ctrl-C) stops generation and leaves the backend usable.
        """
        ...

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion: ...

    def close(self) -> None: ...


class BackendBase:
    """Shared plumbing: ``chat`` from ``stream``, context-manager support."""

    name: str
    model_id: str
    capabilities: Capabilities
    n_ctx: int = 0

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        raise NotImplementedError

    def chat(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        started = time.perf_counter()
        return collect(self.stream(messages, params), model=self.model_id, backend=self.name, started=started)

    def close(self) -> None:
        return None

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
