"""The server's logic around the seam, with a scripted responder: request mapping, OpenAI response and error
shapes, auth, error mapping, the extension hook, and back-pressure under a real uvicorn in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from edgekit.api import Model
from edgekit.errors import (
    BackendError,
    ContextOverflowError,
    EmptyPromptError,
    InputError,
    RemoteServerError,
)
from edgekit.serve import ServeOptions, create_app
from edgekit.serve.protocol import Responder

from .fakes import FakeResponder, live_server

URL = "/v1/chat/completions"
HI = {"messages": [{"role": "user", "content": "Hi"}]}


def client_for(responder: FakeResponder, options: ServeOptions | None = None) -> TestClient:
    return TestClient(create_app(responder, options))


@pytest.fixture
def fake() -> FakeResponder:
    return FakeResponder()


@pytest.fixture
def client(fake: FakeResponder) -> Iterator[TestClient]:
    with client_for(fake) as c:
        yield c


def sse_events(text: str) -> list[Any]:
    """The data payloads of an SSE body: parsed JSON objects, and the final '[DONE]' as a string."""
    events = []
    for block in text.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def assert_error(resp: Any, status: int, *, param: str | None = None, code: str | None = None) -> str:
    """``resp``: an httpx Response, or the TestClient's (which comes from httpx2)."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    if param is not None:
        assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message and "Traceback" not in message
    return message


# --- shapes --------------------------------------------------------------------------------------------


def test_fake_and_model_satisfy_the_protocol() -> None:
    assert isinstance(FakeResponder(), Responder)
    assert isinstance(Model(backend=None, name="m"), Responder)  # type: ignore[arg-type]


def test_non_streaming_completion_shape_and_call_mapping(client: TestClient, fake: FakeResponder) -> None:
    body = {
        "model": "anything",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
        ],
        "max_tokens": 50,
        "max_completion_tokens": 3,
        "temperature": 0,
        "top_p": 0.5,
        "seed": 42,
        "stop": "END",
        "response_format": {"type": "text"},
        "tool_choice": "none",
        "user": "u1",
        "some_future_field": {"x": 1},
    }
    resp = client.post(URL, json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert isinstance(data["created"], int) and data["model"] == "fake-model"
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert fake.calls == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi\nthere"},
            ],
            "stream": False,
            "system": None,
            "max_tokens": 3,  # max_completion_tokens wins over the deprecated max_tokens
            "temperature": 0.0,
            "top_p": 0.5,
            "seed": 42,
            "stop": ("END",),
        }
    ]


def test_defaults_when_the_request_omits_sampling_fields(client: TestClient, fake: FakeResponder) -> None:
    assert client.post(URL, json=HI).status_code == 200
    call = fake.calls[0]
    assert (call["max_tokens"], call["temperature"], call["top_p"], call["seed"], call["stop"]) == (
        256,
        0.7,
        0.95,
        None,
        (),
    )


def test_stream_shape_with_usage(client: TestClient) -> None:
    body = {**HI, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 3}
    with client.stream("POST", URL, json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello from the"
    finish = chunks[-2]
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "length"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_stream_without_include_usage_has_no_usage_field(client: TestClient) -> None:
    with client.stream("POST", URL, json={**HI, "stream": True}) as resp:
        events = sse_events(resp.read().decode())
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_models_health_and_unknown_routes(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in models["data"]] == [
        ("fake-model", "model", "edgekit"),
        ("multilingual-e5-small-int8", "model", "edgekit"),  # /v1/embeddings, listed before its first load
    ]
    assert client.get("/v1/models/fake-model").json()["id"] == "fake-model"
    assert_error(client.get("/v1/models/gpt-4"), 404, code="model_not_found")
    for path in ("/health", "/healthz"):
        health = client.get(path)
        assert health.status_code == 200
        assert health.json() | {"active": 0} == {
            "status": "ok",
            "model": "fake-model",
            "active": 0,
            "queued": 0,
            "concurrency": 1,
            "max_queue": 16,
        }
    assert_error(client.get("/v2/nothing"), 404, code="not_found")
    assert_error(client.get(URL), 405, code="method_not_allowed")


# --- invalid bodies ---------------------------------------------------------------------------------------

UNSUP, INV = "unsupported_parameter", "invalid_value"
BAD_BODIES: list[tuple[str, Any, str | None, str]] = [
    ("not json", b"{nope", None, "invalid_json"),
    ("not an object", [1, 2], None, "invalid_type"),
    ("no messages", {"model": "m"}, "messages", INV),
    ("empty messages", {"messages": []}, "messages", INV),
    ("bad role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", INV),
    ("number content", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", INV),
    ("temperature too high", {**HI, "temperature": 3}, "temperature", INV),
    ("temperature as text", {**HI, "temperature": "1"}, "temperature", INV),
    ("stream as text", {**HI, "stream": "yes"}, "stream", INV),
    ("top_p zero", {**HI, "top_p": 0}, "top_p", INV),
    ("max_tokens zero", {**HI, "max_tokens": 0}, "max_tokens", INV),
    ("stop of numbers", {**HI, "stop": [1]}, "stop", INV),
    (
        "json schema without schema",
        {**HI, "response_format": {"type": "json_schema"}},
        "response_format",
        INV,
    ),
    (
        "invalid json schema",
        {**HI, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "strnig"}}}},
        "response_format",
        "invalid_schema",
    ),
    (
        "strict json schema with a keyword the grammar cannot enforce",
        {
            **HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"strict": True, "schema": {"type": "array", "uniqueItems": True}},
            },
        },
        "response_format",
        "invalid_schema",
    ),
    ("xml format", {**HI, "response_format": {"type": "xml"}}, "response_format", UNSUP),
    (
        "bad tool name",
        {**HI, "tools": [{"type": "function", "function": {"name": "a b"}}]},
        "tools",
        "invalid_schema",
    ),
    (
        "tool_choice not in tools",
        {**HI, "tools": [{"function": {"name": "f"}}], "tool_choice": {"function": {"name": "g"}}},
        "tool_choice",
        INV,
    ),
    ("tool_choice", {**HI, "tool_choice": "sometimes"}, "tool_choice", UNSUP),
    ("functions", {**HI, "functions": [{"name": "f"}]}, "functions", UNSUP),
    ("n", {**HI, "n": 2}, "n", UNSUP),
    ("logprobs", {**HI, "logprobs": True}, "logprobs", UNSUP),
    ("penalty", {**HI, "frequency_penalty": 0.5}, "frequency_penalty", UNSUP),
    ("logit_bias", {**HI, "logit_bias": {"1": 5}}, "logit_bias", UNSUP),
    (
        "image",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "messages[0].content[0]",
        UNSUP,
    ),
    (
        "tool call without a function",
        {"messages": [*HI["messages"], {"role": "assistant", "tool_calls": [{"id": "1"}]}]},
        "messages[1].tool_calls[0]",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(
    ("body", "param", "code"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_invalid_bodies_are_400_in_openai_format(
    client: TestClient, fake: FakeResponder, body: Any, param: str | None, code: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = assert_error(client.post(URL, content=raw), 400, param=param, code=code)
    if code == "unsupported_parameter":
        assert "not supported yet" in message
    assert fake.calls == []  # refused before the model was asked


def test_penalties_of_zero_are_accepted(client: TestClient) -> None:
    body = {**HI, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False, "n": 1, "tools": []}
    assert client.post(URL, json=body).status_code == 200


def test_body_over_the_limit_is_413(fake: FakeResponder) -> None:
    with client_for(fake, ServeOptions(max_body_bytes=1000)) as c:
        body = {"messages": [{"role": "user", "content": "x" * 2000}]}
        assert_error(c.post(URL, json=body), 413, code="request_too_large")


def test_more_messages_than_the_limit_is_400(fake: FakeResponder) -> None:
    with client_for(fake, ServeOptions(max_messages=3)) as c:
        four = {"messages": [{"role": "user", "content": "hi"}] * 4}
        assert_error(c.post(URL, json=four), 400, code="too_many_messages")
        assert c.post(URL, json={"messages": four["messages"][:3]}).status_code == 200


# --- errors from the responder -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_input_errors_are_400_with_message_and_http_hint(stream: bool) -> None:
    overflow = ContextOverflowError("the prompt is 900 tokens but the context window is 512")
    with client_for(FakeResponder(error=overflow)) as c:
        message = assert_error(
            c.post(URL, json={**HI, "stream": stream}), 400, param="messages", code="context_length_exceeded"
        )
    assert "context window is 512" in message and "--n-ctx" in message and "/reset" not in message
    with client_for(FakeResponder(error=EmptyPromptError("the prompt is empty"))) as c:
        message = assert_error(c.post(URL, json={**HI, "stream": stream}), 400, code="invalid_value")
    assert "prompt is empty" in message and "user message" in message
    with client_for(FakeResponder(error=InputError("bad thing", "Do the other thing."))) as c:
        message = assert_error(c.post(URL, json=HI), 400)
    assert message == "bad thing (hint: Do the other thing.)"


def test_runtime_errors_are_500_and_unexpected_ones_say_nothing_inside() -> None:
    with client_for(FakeResponder(error=BackendError("llama.cpp failed to decode"))) as c:
        message = assert_error(c.post(URL, json=HI), 500)
    assert "llama.cpp failed to decode" in message
    with client_for(FakeResponder(error=RemoteServerError("upstream said 500"))) as c:
        assert_error(c.post(URL, json=HI), 502, code="upstream_error")
    secret = RuntimeError("/home/user/secret/path.py line 3")
    with client_for(FakeResponder(error=secret)) as c:
        resp = c.post(URL, json={**HI, "stream": True})
    message = assert_error(resp, 500, code="internal_error")
    assert "secret" not in resp.text and "RuntimeError" not in resp.text and "internal error" in message


def test_failure_mid_stream_is_an_error_event_without_done() -> None:
    body = {**HI, "stream": True}
    with client_for(FakeResponder(fail_after=2)) as c, c.stream("POST", URL, json=body) as resp:
        assert resp.status_code == 200
        events = sse_events(resp.read().decode())
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "internal_error"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Hello from"


def test_a_cascade_answer_carries_its_route_in_the_completion_and_the_final_chunk() -> None:
    from edgekit.assistant import Assistant
    from edgekit.cascade.policy import Policy, default_policy_path
    from edgekit.cascade.router import Router

    from ..cascade.fakes import FakeModel

    router = Router(Policy.load(default_policy_path()), local=[FakeModel("Paris.", prob=0.99)])
    with TestClient(create_app(Assistant(router))) as c:
        body = c.post(URL, json=HI).json()
        with c.stream("POST", URL, json={**HI, "stream": True}) as resp:
            events = sse_events(resp.read().decode())
    assert body["edgekit_route"]["route"] == "local:tiny" and body["edgekit_route"]["trace_id"]
    assert body["model"] == "fake" and all(e["model"] == "fake" for e in events[:-1])  # who answered
    marked = [e for e in events[:-1] if "edgekit_route" in e]
    assert len(marked) == 1 and marked[0]["choices"][0]["finish_reason"] == "stop"
    assert marked[0]["edgekit_route"]["route"] == "local:tiny"


# --- auth ------------------------------------------------------------------------------------------------


def test_bearer_token(fake: FakeResponder) -> None:
    key = "sk-test-0123456789"
    with client_for(fake, ServeOptions(api_key=key)) as c:
        missing = c.post(URL, json=HI)
        assert_error(missing, 401, code="invalid_api_key")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = c.post(URL, json=HI, headers={"Authorization": "Bearer sk-wrong"})
        assert_error(wrong, 401, code="invalid_api_key")
        assert key not in wrong.text
        assert_error(c.get("/v1/models", headers={"Authorization": key}), 401)  # no scheme
        assert_error(c.post(URL, content=b"{bad", headers={"Authorization": "Bearer x"}), 401)  # auth first
        assert fake.calls == []
        ok = {"Authorization": f"Bearer {key}"}
        assert c.post(URL, json=HI, headers=ok).status_code == 200
        assert c.get("/v1/models", headers={"authorization": f"bearer {key}"}).status_code == 200
        assert c.get("/health").status_code == 200  # health stays open
    assert key not in repr(ServeOptions(api_key=key))


def test_options_are_checked() -> None:
    for bad in (
        {"concurrency": 0},
        {"max_queue": -1},
        {"queue_timeout_s": 0},
        {"api_key": "  "},
        {"max_tokens": 0},
    ):
        with pytest.raises(InputError):
            ServeOptions(**bad)


def test_shutdown_closes_the_responder_once_workers_are_done(fake: FakeResponder) -> None:
    with client_for(fake) as c:
        assert c.post(URL, json=HI).status_code == 200
        assert not fake.closed
    assert fake.closed


# --- back-pressure, under a real uvicorn -------------------------------------------------------------------


def _post(base: str, body: dict[str, Any], timeout: float = 30) -> httpx.Response:
    return httpx.post(base + URL, json=body, timeout=timeout)


def _wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_full_queue_is_429_with_retry_after_and_the_queue_drains() -> None:
    gate = threading.Event()
    fake = FakeResponder(gate=gate)
    app = create_app(fake, ServeOptions(concurrency=1, max_queue=2, queue_timeout_s=30))
    with live_server(app) as base, ThreadPoolExecutor(8) as pool:
        service = app.state.service
        futures = [pool.submit(_post, base, HI) for _ in range(3)]
        _wait_for(lambda: service.admission.active == 1 and service.admission.queued == 2)
        extra = [pool.submit(_post, base, HI) for _ in range(4)]
        rejected = [f.result(timeout=10) for f in extra]  # answered at once, while the model is stuck
        for resp in rejected:
            message = assert_error(resp, 429, code="queue_full")
            assert int(resp.headers["retry-after"]) >= 1 and "--max-queue" in message
        assert httpx.get(base + "/health").json()["queued"] == 2  # health answers while the model is busy
        gate.set()
        assert [f.result(timeout=30).status_code for f in futures] == [200, 200, 200]
        _wait_for(lambda: service.admission.active == 0)
    assert fake.most_running == 1


def test_queue_timeout_is_503() -> None:
    gate = threading.Event()
    app = create_app(FakeResponder(gate=gate), ServeOptions(max_queue=4, queue_timeout_s=0.3))
    with live_server(app) as base, ThreadPoolExecutor(4) as pool:
        first = pool.submit(_post, base, HI)
        _wait_for(lambda: app.state.service.admission.active == 1)
        waited = _post(base, HI)
        assert_error(waited, 503, code="queue_timeout")
        assert "retry-after" in waited.headers
        gate.set()
        assert first.result(timeout=30).status_code == 200


def test_concurrency_runs_that_many_at_once() -> None:
    gate = threading.Event()
    fake = FakeResponder(gate=gate)
    app = create_app(fake, ServeOptions(concurrency=3, max_queue=0))
    with live_server(app) as base, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_post, base, {**HI, "stream": s}) for s in (True, False, True)]
        _wait_for(lambda: app.state.service.admission.active == 3)
        assert_error(_post(base, HI), 429)  # max_queue 0: no waiting at all
        gate.set()
        assert [f.result(timeout=30).status_code for f in futures] == [200, 200, 200]
    assert fake.most_running == 3


def test_disconnect_mid_stream_stops_generation_and_frees_the_slot() -> None:
    fake = FakeResponder(reply=" ".join(["word"] * 1000), delay_s=0.01)  # 10 s if nobody stops it
    app = create_app(fake, ServeOptions(max_queue=0))
    service = app.state.service
    with live_server(app) as base:
        with httpx.stream("POST", base + URL, json={**HI, "stream": True, "max_tokens": 1000}) as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("data: ")
        # the client has gone: the generator is closed after the chunk in hand and the slot comes back
        _wait_for(lambda: service.admission.active == 0 and fake.streams_closed == 1, timeout=3)
        assert fake.chunks_made < 300
        fake.delay_s = 0
        assert _post(base, {**HI, "max_tokens": 2}).status_code == 200


def test_drain_turns_queued_and_new_requests_away_with_503() -> None:
    gate = threading.Event()
    app = create_app(FakeResponder(gate=gate), ServeOptions(max_queue=4))
    service = app.state.service
    with live_server(app) as base, ThreadPoolExecutor(4) as pool:
        running = pool.submit(_post, base, HI)
        _wait_for(lambda: service.admission.active == 1)
        queued = pool.submit(_post, base, HI)
        _wait_for(lambda: service.admission.queued == 1)
        service.begin_shutdown()
        assert_error(queued.result(timeout=10), 503, code="shutting_down")
        assert_error(_post(base, HI), 503, code="shutting_down")
        assert httpx.get(base + "/health").status_code == 503
        gate.set()
        assert running.result(timeout=30).status_code == 200  # what was running finishes
