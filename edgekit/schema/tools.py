"""Tool calls: the model picks one tool and writes its arguments, constrained by the tools' schemas.

The call is generated as ``{"name": ..., "arguments": {...}}`` under a grammar that allows only the
declared tools with their own argument schemas, validated like any structured output, and its arguments
pass the safety Guard's tool_call filters (``Guard.check_tool_arguments``) before anything runs.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import SchemaError
from edgekit.runtime.base import Backend
from edgekit.runtime.types import ChatMessage, Completion, GenerationParams
from edgekit.schema.compile import CompiledSchema, compile_schema
from edgekit.schema.generate import DEFAULT_REPAIRS, generate_json

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Tool:
    name: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    """JSON schema of the arguments object."""
    description: str = ""

    @classmethod
    def from_openai(cls, spec: Mapping[str, Any]) -> Tool:
        """From an OpenAI tools entry: {"type": "function", "function": {name, description, parameters}}."""
        fn = spec.get("function", spec)
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise SchemaError(
                "a tool needs a function name", "Use {'type': 'function', 'function': {'name': ...}}."
            )
        params = fn.get("parameters") or {"type": "object"}
        if not isinstance(params, Mapping):
            raise SchemaError(f"tool {fn['name']}: parameters must be a JSON schema object")
        return cls(fn["name"], params, str(fn.get("description") or ""))


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any]
    """The validated arguments, with the safety Guard's redactions applied."""
    blocked: bool = False
    reasons: tuple[str, ...] = ()
    """Why the Guard blocked or changed the arguments (empty when it did neither or did not run)."""
    completion: Completion | None = field(default=None, compare=False, repr=False)

    def to_openai(self, call_id: str = "call_0") -> dict[str, Any]:
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


def new_call_id() -> str:
    """An id for one tool call, in OpenAI's shape."""
    return "call_" + uuid.uuid4().hex[:24]


TEXT_REPLY: dict[str, Any] = {
    "type": "object",
    "properties": {"content": {"type": "string"}},
    "required": ["content"],
    "additionalProperties": False,
}
"""The shape of a direct answer when the model may choose not to call a tool (tool_choice "auto")."""


MAX_PARALLEL = 8
"""The most calls one answer may make when parallel calls are allowed."""


def tools_schema(
    tools: Sequence[Tool], *, allow_text: bool = False, parallel: bool = False
) -> CompiledSchema:
    """One schema for 'call exactly one of these tools with valid arguments' (``allow_text``: or answer
    directly as ``{"content": "..."}``; ``parallel``: or make several calls as ``{"calls": [...]}``)."""
    if not tools:
        raise SchemaError("no tools given", "Pass at least one tool.")
    seen: set[str] = set()
    options = []
    for tool in tools:
        if not _NAME.match(tool.name):
            raise SchemaError(f"tool name {tool.name!r} must be 1-64 letters, digits, '_' or '-'")
        if tool.name in seen:
            raise SchemaError(f"tool {tool.name!r} is declared twice")
        seen.add(tool.name)
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": dict(tool.parameters)},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    calls = list(options)
    if parallel:
        item = {"anyOf": calls} if len(calls) > 1 else calls[0]
        many = {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_PARALLEL}
        options.append(
            {
                "type": "object",
                "properties": {"calls": many},
                "required": ["calls"],
                "additionalProperties": False,
            }
        )
    if allow_text:
        options.append(TEXT_REPLY)
    return compile_schema({"anyOf": options} if len(options) > 1 else options[0], name="tool_call")


def describe(tools: Sequence[Tool], *, allow_text: bool = False, parallel: bool = False) -> str:
    lines = [
        'You can call one of these tools. Reply with the call as JSON: {"name": ..., "arguments": {...}}.'
    ]
    lines += [f"- {t.name}: {t.description}" if t.description else f"- {t.name}" for t in tools]
    if parallel:
        lines.append('To make several calls at once: {"calls": [{"name": ..., "arguments": {...}}, ...]}.')
    if allow_text:
        lines.append('If no tool is needed, answer directly as JSON: {"content": "your answer"}.')
    return "\n".join(lines)


def call_tool(
    backend: Backend,
    messages: Sequence[ChatMessage],
    tools: Sequence[Tool],
    params: GenerationParams,
    *,
    guard: Any = None,
    repairs: int = DEFAULT_REPAIRS,
) -> ToolCall:
    """Generate one tool call; ``guard`` (an edgekit.Guard) checks the arguments before anything runs."""
    compiled = tools_schema(tools)
    msgs = [*messages]
    msgs.insert(0, {"role": "system", "content": describe(tools)})
    result = generate_json(backend, msgs, compiled, params, repairs=repairs)
    name, args = result.value["name"], result.value["arguments"]
    if guard is None:
        return ToolCall(name, args, completion=result.completion)
    decision = guard.check_tool_arguments(name, args)
    reasons = tuple(str(v.reason) for v in decision.verdicts)
    arguments = decision.arguments if decision.arguments is not None else args
    return ToolCall(name, arguments, bool(decision.blocked), reasons, result.completion)


def run_tool(call: ToolCall, functions: Mapping[str, Callable[..., Any]]) -> Any:
    """Run ``call`` with ``functions[call.name](**arguments)``; refuses a call the Guard blocked."""
    if call.blocked:
        from edgekit.safety import SafetyBlockedError

        raise SafetyBlockedError(
            f"the call to {call.name} was blocked by the safety policy: {'; '.join(call.reasons)}",
            "Change the request, or the tool_call rules of the safety policy.",
        )
    if call.name not in functions:
        raise SchemaError(f"no function for tool {call.name!r}", "Pass a function for every declared tool.")
    return functions[call.name](**call.arguments)
