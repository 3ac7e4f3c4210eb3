"""Generate JSON that matches a schema, on any backend, and never return invalid JSON as success.

- llama.cpp: decoding is constrained by the schema's grammar; the result is validated all the same
  (keywords the grammar cannot express, and running out of tokens, are caught here).
- remote: the schema goes out as an OpenAI ``response_format``; the reply is validated, and an endpoint
  that refuses ``response_format`` is asked again without it.
- onnxruntime (and any other backend): the schema is in the prompt; the reply is validated.

An invalid reply is repaired a bounded number of times: the model sees its reply and the validation error
and answers again. After that, SchemaOutputError says what was wrong with the last reply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edgekit.errors import RemoteRequestError, RemoteServerError, SchemaOutputError
from edgekit.runtime.base import Backend
from edgekit.runtime.types import ChatMessage, Chunk, Completion, GenerationParams
from edgekit.schema.compile import CompiledSchema
from edgekit.schema.validate import problems

DEFAULT_REPAIRS = 2


@dataclass(frozen=True)
class JsonResult:
    """A validated value, the reply it was parsed from, and how it was obtained."""

    value: Any
    completion: Completion
    attempts: int
    method: str
    """'grammar', 'response_format' or 'validate' (see Capabilities.structured)."""

    @property
    def text(self) -> str:
        return self.completion.text


_BARE = {"object": "a JSON object", "array": "a JSON array"}


def instruction(compiled: CompiledSchema) -> str:
    """A schema that says nothing but its type (json_object mode) is not shown: a small model shown
    ``{"type": "object"}`` copies it as its answer."""
    schema = compiled.schema
    if isinstance(schema, dict) and set(schema) <= {"type", "$schema"} and schema.get("type") in _BARE:
        return f"Reply with only {_BARE[schema['type']]} that answers the request, nothing else."
    return f"Reply with only a JSON value that matches this JSON schema, nothing else:\n{compiled.text}"


def with_instruction(messages: Sequence[ChatMessage], compiled: CompiledSchema) -> list[ChatMessage]:
    """The schema as a system instruction (joined to the caller's system message, if any)."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0]["role"] == "system":
        msgs[0]["content"] = f"{msgs[0]['content']}\n\n{instruction(compiled)}"
    else:
        msgs.insert(0, {"role": "system", "content": instruction(compiled)})
    return msgs  # type: ignore[return-value]


def constrained(params: GenerationParams, compiled: CompiledSchema, backend: Backend) -> GenerationParams:
    """``params`` with the schema attached where the backend can use it."""
    if backend.capabilities.structured in ("grammar", "response_format"):
        return dataclasses.replace(params, response_format=compiled.response_format())
    return params


def _problem(compiled: CompiledSchema, completion: Completion, params: GenerationParams) -> tuple[Any, str]:
    value, found = problems(compiled, completion.text)
    if not found:
        return value, ""
    if completion.finish_reason == "length":
        return (
            None,
            f"the reply ran out of tokens (max_tokens={params.max_tokens}) before the JSON was complete",
        )
    return None, found[0]


def _chat(
    backend: Backend, msgs: list[ChatMessage], params: GenerationParams, method: str
) -> tuple[Completion, GenerationParams, str]:
    """One reply; an endpoint that refuses a response_format is asked in the next style, then without."""
    while True:
        try:
            return backend.chat(msgs, params), params, method
        except (RemoteRequestError, RemoteServerError) as e:
            fmt = params.response_format
            if fmt is None or "response_format" not in e.message:
                raise
            if fmt.style == "json_schema":
                params = dataclasses.replace(
                    params, response_format=dataclasses.replace(fmt, style="json_object")
                )
            else:
                params, method = dataclasses.replace(params, response_format=None), "validate"


def generate_json(
    backend: Backend,
    messages: Sequence[ChatMessage],
    compiled: CompiledSchema,
    params: GenerationParams,
    *,
    repairs: int = DEFAULT_REPAIRS,
) -> JsonResult:
    """Generate, validate, and repair up to ``repairs`` times; raises SchemaOutputError when it never fits."""
    msgs = with_instruction(messages, compiled)
    run_params = constrained(params, compiled, backend)
    method = backend.capabilities.structured
    last_text, last_problem = "", ""
    for attempt in range(1, repairs + 2):
        completion, run_params, method = _chat(backend, msgs, run_params, method)
        value, last_problem = _problem(compiled, completion, params)
        if not last_problem:
            return JsonResult(value, completion, attempt, method)
        last_text = completion.text
        msgs = [
            *msgs,
            {"role": "assistant", "content": completion.text},
            {
                "role": "user",
                "content": f"That reply is not valid: {last_problem}. Reply again with only the JSON.",
            },
        ]
    raise SchemaOutputError(
        f"no reply matched the schema {compiled.name} after {repairs + 1} attempts: {last_problem}",
        text=last_text,
        attempts=repairs + 1,
    )


def stream_json(
    backend: Backend, messages: Sequence[ChatMessage], compiled: CompiledSchema, params: GenerationParams
) -> Iterator[Chunk]:
    """Stream a schema-constrained reply; the stream ends with SchemaOutputError if the whole is invalid.

    Text already sent cannot be taken back, so streaming does not repair: a caller that needs repair
    uses ``generate_json``.
    """
    parts: list[str] = []
    last: Chunk | None = None
    run_params = constrained(params, compiled, backend)
    for chunk in backend.stream(with_instruction(messages, compiled), run_params):
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            last = chunk
            break
        yield chunk
    text = "".join(parts)
    _, found = problems(compiled, text)
    if found or last is None:
        why = (
            f"the reply ran out of tokens (max_tokens={params.max_tokens}) before the JSON was complete"
            if last is not None and last.finish_reason == "length"
            else (found[0] if found else "the stream ended early")
        )
        raise SchemaOutputError(
            f"the streamed reply does not match the schema {compiled.name}: {why}", text=text
        )
    yield last
