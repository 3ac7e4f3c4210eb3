"""The tool loop: the model calls a tool, the call is guarded and run, its result is guarded and fed back,
until the model answers in words, a step limit or a deadline is reached.

Every way a step can go wrong ends in a typed ``ToolStep`` status that the model is told about as the
tool's result (so it can answer anyway), never in a hang or a raw value leaked. A model that repeats
calls whose results it already has (small models loop) is asked for its answer without tools instead.

| status | when |
|---|---|
| ``ok`` | the function returned a JSON-serializable value |
| ``blocked`` | the safety guard blocked the arguments (not run) or the result (withheld) |
| ``error`` | the function raised, or returned something JSON cannot carry |
| ``timeout`` | the function ran past ``tool_timeout_s`` (its thread is left to finish; its result dropped) |
| ``unknown_tool`` | the model named a tool that was not given |
"""

from __future__ import annotations

import inspect
import json
import threading
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from edgekit.assistant.answer import Answer
from edgekit.assistant.assistant import WITHHELD, render_messages
from edgekit.assistant.privacy import Placeholders
from edgekit.errors import InputError, SchemaError
from edgekit.schema.tools import new_call_id

if TYPE_CHECKING:
    from edgekit.assistant.assistant import Assistant
    from edgekit.schema import Tool, ToolCall

Status = Literal["ok", "blocked", "error", "timeout", "unknown_tool"]
_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class ToolStep:
    call: ToolCall
    call_id: str
    status: Status
    result: str
    """What the model was told: the JSON result, or ``{"error": ...}``."""
    duration_ms: float
    trace_id: str
    """The trace of the answer that made the call."""


@dataclass(frozen=True)
class ToolRun:
    answer: Answer | None
    """The final answer in words (None when the run stopped before one)."""
    steps: tuple[ToolStep, ...]
    stopped: Literal["answered", "max_steps", "timeout", "blocked"]
    """'blocked': the safety policy withheld the final answer."""
    messages: tuple[Mapping[str, Any], ...] = ()
    """The whole exchange, OpenAI-style, tool calls and results included (values as the user wrote them)."""

    @property
    def text(self) -> str:
        return self.answer.text if self.answer is not None else ""


def tool_from_function(name: str, fn: Callable[..., Any]) -> Tool:
    """A Tool whose argument schema comes from ``fn``'s signature (str, int, float, bool, list, dict and
    their Optional forms; other annotations accept any JSON) and whose description is its docstring."""
    from edgekit.schema import Tool

    if not callable(fn):
        raise InputError(f"tool {name!r} is not callable", "Pass a function for every tool name.")
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError):
        sig, hints = None, {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in sig.parameters.values() if sig is not None else ():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        props[p.name] = _json_type(hints.get(p.name, Any))
        if p.default is p.empty:
            required.append(p.name)
    params = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    doc = inspect.getdoc(fn) or ""
    return Tool(name, params, doc.strip().splitlines()[0] if doc.strip() else "")


def _json_type(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _json_type(args[0])
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if hint is list or origin in (list, Sequence):
        return {"type": "array"}
    if hint is dict or origin in (dict, Mapping):
        return {"type": "object"}
    return {}


def run_tools(
    assistant: Assistant,
    messages: str | Sequence[Mapping[str, Any]],
    functions: Mapping[str, Callable[..., Any]],
    *,
    max_steps: int = 4,
    timeout_s: float = 60.0,
    tool_timeout_s: float = 30.0,
    **params: Any,
) -> ToolRun:
    if max_steps < 1:
        raise InputError(f"max_steps must be 1 or more, got {max_steps}")
    if not functions:
        raise SchemaError("no tools given", "Pass tools={'name': function, ...}.")
    specs = [tool_from_function(n, f) for n, f in functions.items()]
    history: list[Mapping[str, Any]] = list(render_messages(messages, params.pop("system", None)))
    ph: Placeholders = params.pop("placeholders", None) or Placeholders()
    deadline = time.monotonic() + timeout_s
    steps: list[ToolStep] = []
    done: set[str] = set()
    for _ in range(max_steps):
        answer = assistant.chat(history, tools=specs, placeholders=ph, **params)
        assert isinstance(answer, Answer)
        if answer.tool_calls and all(_key(c) in done for c in answer.tool_calls):
            # the same calls again (small models loop): their results are in view, so answer in words
            answer = assistant.chat(history, tools=(), placeholders=ph, **params)
            assert isinstance(answer, Answer)
        if not answer.tool_calls:
            stopped: Literal["answered", "blocked"] = "blocked" if answer.blocked else "answered"
            history.append({"role": "assistant", "content": answer.text})
            return ToolRun(answer, tuple(steps), stopped, tuple(history))
        calls = [(c, new_call_id()) for c in answer.tool_calls]
        history.append(
            {"role": "assistant", "content": None, "tool_calls": [c.to_openai(i) for c, i in calls]}
        )
        for call, call_id in calls:
            step = _run_one(assistant, call, call_id, functions, min(tool_timeout_s, _left(deadline)), answer)
            steps.append(step)
            if step.status == "ok":
                done.add(_key(call))
            history.append(
                {"role": "tool", "tool_call_id": call_id, "name": call.name, "content": step.result}
            )
        if _left(deadline) <= 0:
            return ToolRun(None, tuple(steps), "timeout", tuple(history))
    return ToolRun(None, tuple(steps), "max_steps", tuple(history))


def _key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True, ensure_ascii=False, default=str)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _run_one(
    assistant: Assistant,
    call: ToolCall,
    call_id: str,
    functions: Mapping[str, Callable[..., Any]],
    timeout_s: float,
    answer: Answer,
) -> ToolStep:
    t0 = time.perf_counter()

    def step(status: Status, result: str) -> ToolStep:
        ms = round((time.perf_counter() - t0) * 1000, 2)
        return ToolStep(call, call_id, status, result, ms, answer.trace_id)

    if call.name not in functions:
        known = ", ".join(sorted(functions))
        return step("unknown_tool", _error(f"there is no tool named {call.name!r}; the tools are: {known}"))
    if call.blocked:
        return step("blocked", _error("the safety policy blocked this call: " + "; ".join(call.reasons)))
    status, result = _call_with_timeout(functions[call.name], dict(call.arguments), timeout_s)
    if status != "ok":
        return step(status, result)
    if assistant.guard is not None:
        d = assistant.guard.check(result, "context")
        if d.blocked:
            return step("blocked", _error(WITHHELD))
    return step("ok", result)


def _call_with_timeout(fn: Callable[..., Any], args: dict[str, Any], timeout_s: float) -> tuple[Status, str]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(**args)
        except BaseException as e:  # the model is told, the loop goes on
            box["error"] = e

    worker = threading.Thread(target=target, name="edgekit-tool", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return "timeout", _error(f"the tool did not finish within {timeout_s:.1f} s")
    if "error" in box:
        e = box["error"]
        return "error", _error(f"the tool failed: {type(e).__name__}: {e}")
    try:
        return "ok", json.dumps(box.get("value"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        return "error", _error(f"the tool returned a value JSON cannot carry ({e})")


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)
