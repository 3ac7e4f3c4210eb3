"""Value types shared by every backend: messages, generation parameters, chunks and completions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict

import numpy as np

from edgekit.errors import EmptyPromptError, EncodingError, InputError

Role = Literal["system", "user", "assistant", "tool"]


class _Message(TypedDict):
    role: Role
    content: str


class ChatMessage(_Message, total=False):
    tool_calls: list[dict[str, Any]]
    """An assistant message's calls, OpenAI-style (``content`` then holds them as a model writes them)."""
    tool_call_id: str
    """A tool message: the call it answers."""
    name: str


class TokenConstraint(Protocol):
    """A stateful logits processor for one generation on a local backend: ``apply`` sets the logits of
    every token not allowed next to -inf (in place, and returns them), ``consume`` advances past the token
    that was sampled, ``done`` says nothing more may follow. The backend knows no more of it than this."""

    def apply(self, logits: np.ndarray) -> np.ndarray: ...

    def consume(self, token: int) -> None: ...

    @property
    def done(self) -> bool: ...


@dataclass(frozen=True)
class ResponseFormat:
    """A JSON schema the reply must follow (built by ``edgekit.schema.compile_schema``).

    Local backends that can steer decoding call ``constraint`` with themselves for each generation;
    remote ones send ``schema`` as an OpenAI ``response_format``. Either way the caller validates the
    finished text.
    """

    name: str
    schema: str
    """The JSON schema, as JSON text."""
    grammar: str
    style: Literal["json_schema", "json_object"] = "json_schema"
    """How a remote is asked: OpenAI's json_schema, or json_object with a schema (llama.cpp's server)."""
    constraint: Callable[[Any], TokenConstraint] | None = field(default=None, compare=False, repr=False)
    """Builds the token constraint for one generation, given the local backend that runs it."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and length controls. ``temperature=0`` means greedy decoding."""

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat | None = None
    timeout_s: float | None = None
    """Remote backends only: seconds to wait for this request's answer (None: the backend's timeout)."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InputError(
                f"max_tokens must be at least 1, got {self.max_tokens}", "Use max_tokens=N, N >= 1."
            )
        if not self.temperature >= 0 or math.isinf(self.temperature):  # nan fails the comparison
            raise InputError(
                f"temperature must be a finite number >= 0, got {self.temperature}",
                "Use 0 for greedy decoding.",
            )
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.timeout_s is not None and not 0 < self.timeout_s < math.inf:
            raise InputError(f"timeout must be a positive number of seconds, got {self.timeout_s}")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise InputError(
                f"seed must be in 0..{2**32 - 1}, got {self.seed}",
                "llama.cpp keeps 32 bits of the seed; a larger one would silently wrap to another seed.",
            )


@dataclass(frozen=True)
class TokenSignal:
    """What the model thought of one token it produced.

    ``prob`` is the probability of the chosen token and ``entropy`` (nats) the entropy of the full
    next-token distribution, both before temperature; None where the backend cannot see logits (remote).
    """

    text: str
    prob: float | None = None
    entropy: float | None = None
    token_id: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Chunk:
    """A piece of streamed output. The last chunk of a stream has ``finish_reason`` and ``usage`` set."""

    text: str
    signals: tuple[TokenSignal, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class Timings:
    ttft_s: float
    total_s: float
    completion_tokens: int

    @property
    def tokens_per_s(self) -> float:
        """Generation speed after the first token (decode only, prompt processing excluded)."""
        decode = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


@dataclass(frozen=True)
class Confidence:
    """Aggregates of per-token signals, cheap inputs for routing decisions."""

    mean_prob: float | None
    min_prob: float | None
    mean_entropy: float | None

    @classmethod
    def of(cls, signals: Sequence[TokenSignal]) -> Confidence:
        probs = [s.prob for s in signals if s.prob is not None]
        ents = [s.entropy for s in signals if s.entropy is not None]
        return cls(
            mean_prob=math.fsum(probs) / len(probs) if probs else None,
            min_prob=min(probs) if probs else None,
            mean_entropy=math.fsum(ents) / len(ents) if ents else None,
        )


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    usage: Usage
    timings: Timings
    model: str
    backend: str
    signals: tuple[TokenSignal, ...] = field(default=(), repr=False)

    @property
    def confidence(self) -> Confidence:
        return Confidence.of(self.signals)

    def to_dict(self) -> dict[str, object]:
        conf = self.confidence
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "model": self.model,
            "backend": self.backend,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "timings": {
                "ttft_s": round(self.timings.ttft_s, 4),
                "total_s": round(self.timings.total_s, 4),
                "tokens_per_s": round(self.timings.tokens_per_s, 2),
            },
            "confidence": {
                "mean_prob": conf.mean_prob,
                "min_prob": conf.min_prob,
                "mean_entropy": conf.mean_entropy,
            },
        }


def collect(chunks: Iterable[Chunk], *, model: str, backend: str, started: float | None = None) -> Completion:
    """Drain a stream into a Completion, timing the first chunk with text and the end."""
    t0 = time.perf_counter() if started is None else started
    ttft: float | None = None
    parts: list[str] = []
    signals: list[TokenSignal] = []
    finish, usage = "stop", None
    for chunk in chunks:
        if ttft is None and (chunk.text or chunk.signals):
            ttft = time.perf_counter() - t0
        parts.append(chunk.text)
        signals.extend(chunk.signals)
        if chunk.finish_reason:
            finish = chunk.finish_reason
        if chunk.usage:
            usage = chunk.usage
    total = time.perf_counter() - t0
    if usage is None:
        usage = Usage(prompt_tokens=0, completion_tokens=len(signals))
    timings = Timings(
        ttft_s=total if ttft is None else ttft, total_s=total, completion_tokens=usage.completion_tokens
    )
    return Completion("".join(parts), finish, usage, timings, model, backend, tuple(signals))


CHARS_PER_TOKEN = 4
"""What a prompt's length in tokens is estimated from where no tokenizer can count it."""


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN


def normalize_messages(messages: str | Sequence[ChatMessage], system: str | None = None) -> list[ChatMessage]:
    """Accept a bare prompt or a message list; reject empty input early with a clear error."""
    msgs: list[ChatMessage] = (
        [{"role": "user", "content": messages}] if isinstance(messages, str) else [dict(m) for m in messages]  # type: ignore[misc]
    )
    if system:
        msgs = [{"role": "system", "content": system}, *[m for m in msgs if m["role"] != "system"]]
    for m in msgs:
        if m.get("role") not in ("system", "user", "assistant", "tool") or not isinstance(
            m.get("content"), str
        ):
            raise InputError(f"bad chat message {m!r}", "Each message needs a role and a string content.")
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates: bytes that were not UTF-8 (argv, files)
            raise EncodingError(
                f"the {m['role']} message is not valid UTF-8 (at character {e.start})"
            ) from None
    if not any(m["role"] == "user" and m["content"].strip() for m in msgs):
        raise EmptyPromptError("the prompt is empty")
    return msgs


def plain_transcript(messages: Sequence[ChatMessage]) -> str:
    """Prompt for models that ship no chat template (base models): a transcript ending in 'assistant:'."""
    return "\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant:"])
