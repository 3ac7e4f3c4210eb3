"""OpenAI's legacy text completions at the HTTP edge (``POST /v1/completions``): the request body and the
``text_completion`` bodies and stream events.

The prompt is continued as plain text on the local model (``Assistant.complete``: no chat template; a
cascade continues on its first local tier). One prompt per request, given as a string or a list of one
string; ``max_tokens`` defaults to 16 as in OpenAI's API. ``echo`` puts the prompt before the text. What
edgekit cannot honor (several prompts, token-id prompts, ``suffix``, ``n``/``best_of`` > 1, ``logprobs``,
penalties, ``logit_bias``) is refused with a 400 that names the field, never silently dropped.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, ValidationError

from edgekit.assistant.answer import Answer
from edgekit.runtime.types import Chunk, Usage
from edgekit.serve.schema import ApiError, SamplingRequest, unsupported, usage_dict, validation_error

DEFAULT_COMPLETION_MAX_TOKENS = 16
"""OpenAI's default for the legacy completions API (chat completions default to the server's 256)."""


class CompletionRequest(SamplingRequest):
    prompt: str | list[Any]
    echo: bool = False
    # Accepted in the schema so they can be refused by name (see ``_check_supported``).
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)
    logprobs: int | None = None


@dataclass(frozen=True)
class TextCall:
    """What the server passes to ``Assistant.complete``, plus how to shape the answer."""

    prompt: str
    stream: bool
    include_usage: bool
    echo: bool
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...] = ()

    def kwargs(self) -> dict[str, Any]:
        """What ``Assistant.complete`` takes besides the prompt and ``stream``."""
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
        }


def parse_completion(body: bytes) -> TextCall:
    """Validate a completions body; every problem is an ``ApiError`` 400 naming the field."""
    try:
        req = CompletionRequest.model_validate_json(body)
    except ValidationError as e:
        raise validation_error(e) from None
    _check_supported(req)
    return TextCall(
        prompt=_prompt(req.prompt),
        stream=req.stream,
        echo=req.echo,
        max_tokens=req.max_tokens or DEFAULT_COMPLETION_MAX_TOKENS,
        **req.sampling(),
    )


def _prompt(prompt: str | list[Any]) -> str:
    if isinstance(prompt, list):
        if prompt and all(isinstance(p, (int, list)) for p in prompt):
            raise unsupported("prompt", "a prompt of token ids (send the text)")
        if len(prompt) > 1 and all(isinstance(p, str) for p in prompt):
            raise unsupported("prompt", "several prompts in one request (send one request per prompt)")
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise ApiError(
                400, "prompt must be a string or a list of one string", param="prompt", code="invalid_type"
            )
        prompt = prompt[0]
    if not prompt.strip():
        raise ApiError(
            400, "prompt is empty: send some text to continue", param="prompt", code="invalid_value"
        )
    return prompt


def _check_supported(req: CompletionRequest) -> None:
    if req.suffix:
        raise unsupported("suffix", "suffix (text after the insertion point)")
    for name in ("n", "best_of"):
        if getattr(req, name) not in (None, 1):
            raise unsupported(name, f"{name} > 1 (several choices per request)")
    if req.logprobs:
        raise unsupported("logprobs", "logprobs")
    req.refuse_unsupported_sampling()


# --- responses ------------------------------------------------------------------------------------


def new_completion_id() -> str:
    return "cmpl-" + uuid.uuid4().hex


def text_completion_body(answer: Answer, *, model: str, echo: str = "") -> dict[str, Any]:
    """The ``text_completion`` of an answer; ``echo``: the prompt, put before the text."""
    return {
        "id": new_completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"text": echo + answer.text, "index": 0, "logprobs": None, "finish_reason": answer.finish_reason}
        ],
        "usage": usage_dict(answer.completion.usage),
    }


@dataclass
class TextShaper:
    """Shapes one stream's ``text_completion`` events, all with the same id and created time (the same
    methods as ``schema.ChunkShaper``, so one loop sends either)."""

    model: str
    include_usage: bool
    echo: str = ""
    id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def event(self, text: str, finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def first(self) -> dict[str, Any] | None:
        """The echoed prompt, if asked for (a text completion has no role event to open with)."""
        return self.event(self.echo) if self.echo else None

    def text(self, chunk: Chunk) -> dict[str, Any]:
        return self.event(chunk.text)

    def finish(self, finish_reason: str) -> dict[str, Any]:
        return self.event("", finish_reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_dict(usage),
        }
