"""edgekit serve --safety with tools: a tool call's arguments pass the safety guard before the client
gets them. The model is a scripted responder (the seam); the app, the guard and its policy are real."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from starlette.testclient import TestClient

from edgekit.assistant import Assistant
from edgekit.errors import SchemaOutputError
from edgekit.runtime.types import ChatMessage, Completion, Timings, Usage
from edgekit.safety import Guard
from edgekit.serve import ServeOptions, create_app

TOOLS = [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}]


class ToolCaller:
    """Answers every request with the same tool call text, checking it gets the tools' schema."""

    name = "scripted"

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.text = json.dumps({"name": "send", "arguments": arguments})
        self.schemas: list[Any] = []

    def chat(self, messages: Sequence[ChatMessage], *, stream: bool, **params: Any) -> Completion:
        self.schemas.append(params.get("schema"))
        params["schema"].validate(self.text)
        return Completion(self.text, "stop", Usage(5, 9), Timings(0.01, 0.02, 9), self.name, "fake")

    def close(self) -> None:
        return None


def post(inner: ToolCaller) -> dict[str, Any]:
    app = create_app(Assistant(inner, guard=Guard()), ServeOptions())
    with TestClient(app) as client:
        body = {
            "messages": [{"role": "user", "content": "Please tell Sam the meeting moved to noon."}],
            "tools": TOOLS,
        }
        resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["choices"][0])


def test_clean_arguments_come_back_as_a_tool_call() -> None:
    inner = ToolCaller({"text": "see you at noon"})
    choice = post(inner)
    assert choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "text": "see you at noon"
    }
    assert inner.schemas[0].name == "tool_call"


def test_secret_in_arguments_never_reaches_the_client() -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 6
    choice = post(ToolCaller({"text": f"the key is {secret}"}))
    assert secret not in json.dumps(choice)
    assert choice["finish_reason"] in ("content_filter", "tool_calls")


def test_tool_arguments_pass_the_tool_call_layer_itself() -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 6
    inner = ToolCaller({"text": f"the key is {secret}"})
    answer = Assistant(inner, guard=Guard()).chat("Send it.", tools=TOOLS)
    assert answer.finish_reason == "content_filter" and answer.tool_calls[0].blocked  # type: ignore[union-attr]
    unguarded = Assistant(inner).chat("Send it.", tools=TOOLS)
    assert unguarded.tool_calls[0].arguments["text"].endswith(secret)  # type: ignore[union-attr]


class Replier(ToolCaller):
    """Answers without a tool, as tool_choice "auto" allows: {"content": ...}."""

    def __init__(self) -> None:
        super().__init__({})
        self.text = json.dumps({"content": "Sure, noon it is."})


def _ask(inner: ToolCaller, **extra: Any) -> Any:
    app = create_app(inner, ServeOptions())
    body = {"messages": [{"role": "user", "content": "Hi there!"}], "tools": TOOLS, **extra}
    with TestClient(app) as client:
        return client.post("/v1/chat/completions", json=body)


def test_auto_lets_the_model_answer_without_a_tool() -> None:
    inner = Replier()
    choice = _ask(inner).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "Sure, noon it is."}
    streamed = _ask(Replier(), stream=True).text
    assert '"content": "Sure, noon it is."' in streamed.replace('":"', '": "')
    assert streamed.rstrip().endswith("data: [DONE]")


def test_required_does_not_accept_a_direct_answer() -> None:
    inner = ToolCaller({"text": "x"})
    _ask(inner, tool_choice="required")
    with pytest.raises(SchemaOutputError):
        inner.schemas[0].validate(json.dumps({"content": "no tool"}))
    _ask(inner)  # auto (the default)
    assert inner.schemas[1].validate(json.dumps({"content": "no tool"})) == {"content": "no tool"}


def test_parallel_calls_only_when_the_request_asks_and_blocked_ones_are_left_out() -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 6
    inner = ToolCaller({})
    inner.text = json.dumps(
        {
            "calls": [
                {"name": "send", "arguments": {"text": "hi"}},
                {"name": "send", "arguments": {"text": secret}},
            ]
        }
    )
    app = create_app(Assistant(inner, guard=Guard()), ServeOptions())
    body = {"messages": [{"role": "user", "content": "Send two notes."}], "tools": TOOLS}
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json=body)  # the default: one call per answer
        resp = client.post("/v1/chat/completions", json={**body, "parallel_tool_calls": True})
    with pytest.raises(SchemaOutputError):
        inner.schemas[0].validate(inner.text)
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"text": "hi"}
    ]  # the key's call is out
    assert secret not in resp.text
