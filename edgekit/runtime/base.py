"""The Backend seam: one small protocol that llama.cpp, onnxruntime and remote HTTP implement.

A backend turns chat messages into a stream of ``Chunk``s. ``stream`` is the one method to write;
``chat`` is derived from it by ``collect``. Local backends are steerable (they expose per-token
signals and, later, grammars); the remote backend is a black box whose output is validated afterwards.

Plain text completion (a prompt continued as it is, with no chat template: what a base model does and what
the legacy completions API asks) is an optional extra, ``stream_text(prompt, params)``, outside the
protocol so a backend that cannot do it still is one: the local backends have it; ``BackendBase`` says
clearly that the others do not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edgekit.errors import InputError
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

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int | None:
        """Tokens the chat prompt takes with this model's template and tokenizer; None when the backend
        cannot count them (a remote model)."""
        ...

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

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int | None:
        return None

    def stream_text(self, prompt: str, params: GenerationParams) -> Iterator[Chunk]:
        """Continue ``prompt`` as plain text (no chat template), as ``stream`` does a chat."""
        raise InputError(
            f"the {self.name} backend ({self.model_id}) cannot continue plain text, only chat",
            "Use chat completions, or serve a local GGUF or ONNX model.",
        )

    def close(self) -> None:
        return None

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
