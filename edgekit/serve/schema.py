"""OpenAI chat-completions shapes at the HTTP edge: the request body (pydantic) and the response bodies.

``response_format`` (json_object, json_schema) and ``tools`` (with ``tool_choice``) become a compiled
schema the answer must match (see edgekit.schema). Request fields that edgekit cannot honor yet (legacy
``functions``, ``n > 1``, ``logprobs``, penalties, ``logit_bias``, non-text content) are refused with a 400
that names them, never silently dropped. Unknown fields are ignored, as newer SDKs send fields older
servers do not know.
``model`` may name anything: the server answers with its own model and says which in ``model``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.assistant.answer import Answer
from edgekit.runtime.types import ChatMessage, Chunk, Usage
from edgekit.schema.tools import new_call_id

DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.95


class ApiError(Exception):
    """An error response in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def unsupported(param: str, what: str) -> ApiError:
    return ApiError(
        400, f"{what} is not supported yet by edgekit serve", param=param, code="unsupported_parameter"
    )


# --- request ------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ContentPart(_Body):
    model_config = ConfigDict(strict=True, extra="allow")
    type: str
    text: str | None = None


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class SamplingRequest(_Body):
    """What chat and text completion bodies share: the model, streaming, sampling and stop strings, and
    the sampling fields edgekit refuses by name (``refuse_unsupported_sampling``)."""

    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1)
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None

    def sampling(self) -> dict[str, Any]:
        """``include_usage``, ``temperature``, ``top_p``, ``seed`` and ``stop`` of a parsed call, with the
        server's defaults where the body gives none."""
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return {
            "include_usage": bool(self.stream_options and self.stream_options.include_usage),
            "temperature": DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            "top_p": DEFAULT_TOP_P if self.top_p is None else self.top_p,
            "seed": self.seed,
            "stop": tuple(s for s in stop if s),
        }

    def refuse_unsupported_sampling(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise unsupported(name, name)
        if self.logit_bias:
            raise unsupported("logit_bias", "logit_bias")


class ChatRequest(SamplingRequest):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # Accepted in the schema so they can be refused by name (see ``check_supported``).
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


@dataclass(frozen=True)
class ChatCall:
    """What the server passes to ``Responder.chat``, plus how to shape the answer."""

    messages: list[ChatMessage]
    stream: bool
    include_usage: bool
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...] = field(default=())
    schema: Any = None
    """A CompiledSchema from ``response_format``: the answer must match it."""
    tools: tuple[Any, ...] = ()
    """edgekit.schema.Tool for each tool the model may call."""
    tool_choice: str = "auto"
    """'auto' (may answer without a tool) or 'required' (``tools`` is then the one named, if one was)."""
    parallel: bool = False
    """Several calls in one answer: only when the request asks (``parallel_tool_calls: true``); OpenAI's
    default of true would make every tool request harder for a small model."""

    def kwargs(self) -> dict[str, Any]:
        """What ``Assistant.chat`` takes besides the messages and ``stream``."""
        structured: dict[str, Any] = {"schema": self.schema} if self.schema is not None else {}
        if self.tools:
            structured = {
                "tools": self.tools,
                "tool_choice": self.tool_choice,
                "parallel_tool_calls": self.parallel,
            }
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": self.stop,
            **structured,
        }


def parse_request(body: bytes, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> ChatCall:
    """Validate a request body; every problem is an ``ApiError`` 400 naming the field."""
    try:
        req = ChatRequest.model_validate_json(body)
    except ValidationError as e:
        raise validation_error(e) from None
    check_supported(req)
    messages = [_message(i, m) for i, m in enumerate(req.messages)]
    schema, tools = _structured(req)
    forced = req.tool_choice == "required" or isinstance(req.tool_choice, dict)  # dict: tools is that one
    return ChatCall(
        messages=messages,
        schema=schema,
        tools=tools,
        tool_choice="required" if forced else "auto",
        parallel=req.parallel_tool_calls is True,
        stream=req.stream,
        max_tokens=req.max_completion_tokens or req.max_tokens or default_max_tokens,
        **req.sampling(),
    )


def _structured(req: ChatRequest) -> tuple[Any, tuple[Any, ...]]:
    """(CompiledSchema or None, tools) from response_format, tools and tool_choice; bad ones are 400s."""
    from edgekit.errors import SchemaError
    from edgekit.schema import Tool, compile_schema, tools_schema

    try:
        if req.tools and req.tool_choice != "none":
            tools = tuple(Tool.from_openai(t) for t in req.tools)
            choice = req.tool_choice
            if isinstance(choice, dict):
                wanted = (choice.get("function") or {}).get("name")
                tools = tuple(t for t in tools if t.name == wanted)
                if not tools:
                    raise ApiError(
                        400,
                        f"tool_choice names {wanted!r}, not in tools",
                        param="tool_choice",
                        code="invalid_value",
                    )
            tools_schema(tools)  # a bad tool is the request's fault: a 400 naming it, before admission
            return None, tools
        fmt = req.response_format or {}
        kind = fmt.get("type", "text")
        if kind == "json_object":
            return compile_schema({"type": "object"}, name="json_object"), ()
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or "schema" not in spec:
                raise ApiError(
                    400,
                    "response_format json_schema needs a 'schema'",
                    param="response_format",
                    code="invalid_value",
                )
            name, strict = str(spec.get("name") or "response"), spec.get("strict") is True
            return compile_schema(spec["schema"], name=name, strict=strict), ()  # strict: grammar only
        if kind != "text":
            raise unsupported("response_format", f"response_format of type {kind!r}")
    except SchemaError as e:
        param = "tools" if req.tools and req.tool_choice != "none" else "response_format"
        raise ApiError(400, f"{e.message} (hint: {e.hint})", param=param, code="invalid_schema") from None
    return None, ()


def check_supported(req: ChatRequest) -> None:
    if req.functions:
        raise unsupported("functions", "the legacy functions field (use tools)")
    if req.function_call is not None and req.function_call != "none":
        raise unsupported("function_call", "the legacy function_call field (use tool_choice)")
    if isinstance(req.tool_choice, str) and req.tool_choice not in ("none", "auto", "required"):
        raise unsupported("tool_choice", f"tool_choice {req.tool_choice!r}")
    if req.n not in (None, 1):
        raise unsupported("n", "n > 1 (several choices per request)")
    if req.logprobs or req.top_logprobs:
        raise unsupported("logprobs" if req.logprobs else "top_logprobs", "logprobs")
    req.refuse_unsupported_sampling()


def _message(i: int, m: Message) -> ChatMessage:
    if m.tool_calls and m.role != "assistant":
        raise ApiError(400, "only assistant messages carry tool_calls", param=f"messages[{i}].tool_calls")
    if isinstance(m.content, list):
        parts = []
        for j, part in enumerate(m.content):
            if part.type != "text" or part.text is None:
                raise unsupported(f"messages[{i}].content[{j}]", f"content of type {part.type!r}")
            parts.append(part.text)
        content = "\n".join(parts)
    else:
        content = m.content or ""
    role = "system" if m.role == "developer" else m.role
    msg: ChatMessage = {"role": role, "content": content}
    if m.tool_calls:
        msg["tool_calls"] = [
            _tool_call(f"messages[{i}].tool_calls[{j}]", c) for j, c in enumerate(m.tool_calls)
        ]
    if m.tool_call_id is not None:
        msg["tool_call_id"] = m.tool_call_id
    return msg


def _tool_call(param: str, call: Any) -> dict[str, Any]:
    """An earlier answer's tool call, as OpenAI sends it back: {id, type, function: {name, arguments}}."""
    fn = call.get("function") if isinstance(call, dict) else None
    args = fn.get("arguments") if isinstance(fn, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(args, str):
        raise ApiError(
            400,
            "a tool call needs function.name and function.arguments (JSON text)",
            param=param,
            code="invalid_value",
        )
    try:
        json.loads(args)
    except ValueError:
        raise ApiError(
            400, "function.arguments is not valid JSON", param=param, code="invalid_value"
        ) from None
    return dict(call)


def validation_error(e: ValidationError) -> ApiError:
    """The 400 for a body pydantic refused, naming the first field it refused (every body model here)."""
    first = e.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first['msg']}", code="invalid_json")
    if first["type"] == "model_type" and not first["loc"]:
        return ApiError(400, "the request body must be a JSON object", code="invalid_type")
    param = _param(first["loc"])
    return ApiError(400, f"{param}: {first['msg']}", param=param, code="invalid_value")


_BRANCHES = ("str", "list[ContentPart]", "list[str]", "list[any]", "dict[str,any]", "bool", "int", "float")


def _param(loc: tuple[int | str, ...]) -> str:
    """('messages', 0, 'content', 'str') -> 'messages[0].content' (pydantic's union-branch names dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _BRANCHES:
            continue
        else:
            out += f".{part}" if out else part
    return out


# --- responses ------------------------------------------------------------------------------------


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def message_of(answer: Answer) -> tuple[dict[str, Any], str]:
    """The OpenAI assistant message of an answer and its finish reason: a tool call's arguments are
    validated and checked by the safety guard already ('content_filter' when it blocked them)."""
    if answer.tool_calls:  # blocked calls are left out; all blocked: content_filter
        allowed = [c for c in answer.tool_calls if not c.blocked]
        calls = [c.to_openai(new_call_id()) for c in allowed]
        return {"role": "assistant", "content": None, "tool_calls": calls}, answer.finish_reason
    return {"role": "assistant", "content": answer.text}, answer.finish_reason


def completion_body(answer: Answer, *, model: str, id: str | None = None) -> dict[str, Any]:
    message, finish = message_of(answer)
    return {
        "id": id or new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage_dict(answer.completion.usage),
    }


@dataclass
class ChunkShaper:
    """Shapes one stream's ``chat.completion.chunk`` events, all with the same id and created time."""

    model: str
    include_usage: bool
    id: str = field(default_factory=new_id)
    created: int = field(default_factory=lambda: int(time.time()))

    def event(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def first(self) -> dict[str, Any]:
        return self.event({"role": "assistant", "content": ""})

    def text(self, chunk: Chunk) -> dict[str, Any]:
        return self.event({"content": chunk.text})

    def finish(self, finish_reason: str) -> dict[str, Any]:
        return self.event({}, finish_reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_dict(usage),
        }
