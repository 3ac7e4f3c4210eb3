"""RemoteBackend against httpx.MockTransport: request shape, SSE parsing, error mapping, key hygiene."""

from __future__ import annotations

import email.utils
import json
import time
import traceback
from collections.abc import Callable, Iterator

import httpx
import pytest

from edgekit.errors import (
    EdgekitError,
    InputError,
    RemoteAuthError,
    RemoteError,
    RemoteProtocolError,
    RemoteRateLimitError,
    RemoteRequestError,
    RemoteServerError,
    RemoteTimeoutError,
    RemoteUnreachableError,
)
from edgekit.runtime.base import Backend
from edgekit.runtime.remote import RemoteBackend, iter_sse_data
from edgekit.runtime.types import ChatMessage, Chunk, GenerationParams, Usage

KEY = "sk-test-Zq8vSECRETkey0123456789"
BASE = "http://remote.test/v1"
MSGS: list[ChatMessage] = [{"role": "user", "content": "hi"}]
PARAMS = GenerationParams(max_tokens=16, temperature=0.0, top_p=1.0)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_REMOTE_API_KEY", KEY)


def delta(text: str | None = None, finish: str | None = None, *, role: bool = False) -> dict:
    d: dict = {}
    if role:
        d["role"] = "assistant"
    if text is not None:
        d["content"] = text
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": d, "finish_reason": finish}],
        "usage": None,
    }


def usage_event(prompt: int, completion: int) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def sse(*events: dict | str, eol: str = "\n") -> bytes:
    out = []
    for ev in events:
        payload = ev if isinstance(ev, str) else json.dumps(ev)
        out.append(f"data: {payload}{eol}{eol}")
    return "".join(out).encode()


STANDARD = sse(
    delta("", role=True),
    delta("Hel"),
    delta("lo"),
    delta(" wörld"),
    delta(None, "length"),
    usage_event(5, 3),
    "[DONE]",
)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def sse_response(body: bytes | list[bytes], status: int = 200, **headers: str) -> httpx.Response:
    hdrs = {"content-type": "text/event-stream", **headers}
    content = iter(body) if isinstance(body, list) else body
    return httpx.Response(status, headers=hdrs, content=content)


def backend(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> RemoteBackend:
    return RemoteBackend(kw.pop("base_url", BASE), "test-model", transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def run(b: RemoteBackend, params: GenerationParams = PARAMS) -> list[Chunk]:
    with b:
        return list(b.stream(MSGS, params))


def fail(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> RemoteError:
    with pytest.raises(RemoteError) as info, backend(handler, **kw) as b:
        list(b.stream(MSGS, PARAMS))
    return info.value


# --- construction -------------------------------------------------------------------------------


def test_identity_and_protocol() -> None:
    with backend(lambda r: sse_response(STANDARD)) as b:
        assert b.has_api_key
        assert isinstance(b, Backend)
        assert b.name == "remote"
        assert b.model_id == "test-model"
        assert b.n_ctx == 0
        caps = b.capabilities
        assert (caps.grammar, caps.logprobs, caps.stream, caps.local) == (False, False, True, False)


def test_timeouts() -> None:
    with RemoteBackend(BASE, "m", timeout=12, connect_timeout=2) as b:
        assert b.timeout.read == 12 and b.timeout.connect == 2
    t = httpx.Timeout(3.0, read=9.0)
    with RemoteBackend(BASE, "m", timeout=t) as b:
        assert b.timeout is t


@pytest.mark.parametrize("url", ["", "not a url", "ftp://host/v1", "http:///v1", "http://[::1/v1"])
def test_bad_url_is_input_error(url: str) -> None:
    with pytest.raises(InputError):
        RemoteBackend(url, "m")


def test_empty_model_is_input_error() -> None:
    with pytest.raises(InputError):
        RemoteBackend(BASE, "")


def test_close_is_idempotent() -> None:
    b = backend(lambda r: sse_response(STANDARD))
    b.close()
    b.close()


# --- request shape ------------------------------------------------------------------------------


def test_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response(STANDARD)

    params = GenerationParams(
        max_tokens=7, temperature=0.2, top_p=0.5, top_k=3, seed=42, stop=("\n\n", "END")
    )
    msgs: list[ChatMessage] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    with backend(handler, headers={"X-Extra": "yes"}) as b:
        list(b.stream(msgs, params))
    (req,) = seen
    assert req.method == "POST"
    assert str(req.url) == "http://remote.test/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-extra"] == "yes"
    body = json.loads(req.content)
    assert body == {
        "model": "test-model",
        "messages": msgs,
        "max_tokens": 7,
        "temperature": 0.2,
        "top_p": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 42,
        "stop": ["\n\n", "END"],
    }


def test_request_omits_unset_seed_and_stop_and_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKIT_REMOTE_API_KEY")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response(STANDARD)

    b = backend(handler, base_url=BASE + "/")  # a trailing slash is tolerated
    assert not b.has_api_key
    run(b)
    body = json.loads(seen[0].content)
    assert "seed" not in body and "stop" not in body
    assert "authorization" not in seen[0].headers
    assert str(seen[0].url) == "http://remote.test/v1/chat/completions"


def test_api_key_env_name_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHER_KEY_VAR", "sk-other")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse_response(STANDARD)

    run(backend(handler, api_key_env="OTHER_KEY_VAR"))
    assert seen[0].headers["authorization"] == "Bearer sk-other"


# --- SSE parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("size", [1, 2, 7, 10_000])
def test_stream_parsing_across_network_chunks(eol: str, size: int) -> None:
    body = sse(
        delta("", role=True), delta("Hel"), delta("lo"), delta(" wörld"), delta(None, "length"),
        usage_event(5, 3), "[DONE]", eol=eol,
    )  # fmt: skip
    chunks = run(backend(lambda r: sse_response(split(body, size))))
    assert [c.text for c in chunks] == ["Hel", "lo", " wörld", ""]
    for c in chunks[:-1]:
        assert len(c.signals) == 1
        assert c.signals[0].text == c.text
        assert c.signals[0].prob is None and c.signals[0].entropy is None
        assert c.finish_reason is None and c.usage is None
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage == Usage(prompt_tokens=5, completion_tokens=3)
    assert chunks[-1].signals == ()


def test_comments_event_id_retry_lines_and_multiline_data() -> None:
    text = (
        ": this is a comment\n"
        ": ping - 2024-01-01 00:00:00\n"
        "\n"
        "event: message\n"
        "id: 1\n"
        "retry: 1000\n"
        'data: {"choices": [{"index": 0,\n'
        'data:  "delta": {"content": "multi"}}]}\n'
        "\n"
        ":keepalive\n"
        'data:{"choices": [{"index": 0, "delta": {"content": "-line"}, "finish_reason": "stop"}]}\n'
        "\n"
        "event: done\n"
        "data: [DONE]\n"
        "\n"
    )
    chunks = run(backend(lambda r: sse_response(split(text.encode(), 3))))
    assert "".join(c.text for c in chunks) == "multi-line"
    assert chunks[-1].finish_reason == "stop"
    # no usage event: completion tokens are the number of content deltas
    assert chunks[-1].usage == Usage(prompt_tokens=0, completion_tokens=2)


def test_iter_sse_data_joins_data_lines_and_strips_one_space() -> None:
    raw = b"data: a\ndata:  b\ndata\n\n: c\n\ndata: [DONE]"
    assert list(iter_sse_data([raw])) == ["a\n b\n", "[DONE]"]


def test_multibyte_utf8_split_between_chunks() -> None:
    body = sse(delta("日本語 ✓"), delta(None, "stop"), "[DONE]")
    chunks = run(backend(lambda r: sse_response(split(body, 1))))
    assert chunks[0].text == "日本語 ✓"


def test_finish_reason_defaults_to_stop_when_done_without_one() -> None:
    chunks = run(backend(lambda r: sse_response(sse(delta("a"), delta("b"), "[DONE]"))))
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(0, 2)


def test_done_without_trailing_blank_line_and_data_after_done_ignored() -> None:
    body = sse(delta("a")) + b"data: [DONE]\n\ndata: {garbage"
    assert [c.text for c in run(backend(lambda r: sse_response(body)))] == ["a", ""]
    body = sse(delta("a")) + b"data: [DONE]"
    assert [c.text for c in run(backend(lambda r: sse_response(body)))] == ["a", ""]


def test_finish_reason_without_done_is_accepted() -> None:
    chunks = run(backend(lambda r: sse_response(sse(delta("a"), delta(None, "stop"), usage_event(1, 1)))))
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage == Usage(1, 1)


def test_chat_collects_the_stream() -> None:
    with backend(lambda r: sse_response(STANDARD)) as b:
        comp = b.chat(MSGS, PARAMS)
    assert comp.text == "Hello wörld"
    assert comp.finish_reason == "length"
    assert comp.usage == Usage(5, 3)
    assert comp.backend == "remote" and comp.model == "test-model"
    assert len(comp.signals) == 3
    assert comp.confidence.mean_prob is None


def test_json_answer_to_a_stream_request_is_accepted() -> None:
    body = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2},
    }
    chunks = run(backend(lambda r: httpx.Response(200, json=body)))
    assert [c.text for c in chunks] == ["whole", ""]
    assert chunks[-1].usage == Usage(4, 2) and chunks[-1].finish_reason == "stop"


def test_closing_the_stream_early_leaves_backend_usable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return sse_response(split(STANDARD, 5))

    with backend(handler) as b:
        gen = b.stream(MSGS, PARAMS)
        assert next(gen).text == "Hel"
        gen.close()
        assert b.chat(MSGS, PARAMS).text == "Hello wörld"
    assert len(calls) == 2


def test_complete_non_streaming() -> None:
    seen: list[httpx.Request] = []
    body = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    with backend(handler) as b:
        comp = b.complete(MSGS, PARAMS)
    sent = json.loads(seen[0].content)
    assert sent["stream"] is False and "stream_options" not in sent
    assert comp.text == "ok" and comp.finish_reason == "length" and comp.usage == Usage(3, 1)
    assert comp.backend == "remote" and comp.timings.total_s >= 0


# --- protocol errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (sse(delta("a")), "stream ended early"),
        (b"", "stream ended early"),
        (sse(delta("a")) + b"data: {not json\n\n", "malformed JSON"),
        (sse(delta("a"), "[1, 2]"), "not a JSON object"),
        (sse({"choices": {"0": 1}}), "'choices' is not a list"),
        (sse({"choices": ["x"]}), "not an object"),
        (sse({"choices": [{"delta": "x"}]}), "'delta' is not an object"),
        (sse({"choices": [{"delta": {"content": 5}}]}), "'content' is not a string"),
        (sse(delta("a"), {"choices": [], "usage": {"prompt_tokens": "x"}}), "usage"),
        (sse(delta("a"), {"choices": [], "usage": [1]}), "usage"),
    ],
)
def test_protocol_errors(body: bytes, needle: str) -> None:
    err = fail(lambda r: sse_response(body))
    assert type(err) is RemoteProtocolError
    assert needle in err.message
    assert "http://remote.test/v1/chat/completions" in err.message
    assert err.retryable


def test_html_page_is_a_protocol_error() -> None:
    err = fail(lambda r: httpx.Response(200, html="<html>login</html>"))
    assert type(err) is RemoteProtocolError and "HTML" in err.message


def test_error_object_mid_stream() -> None:
    body = sse(delta("a"), {"error": {"message": "model crashed", "type": "server_error"}})
    err = fail(lambda r: sse_response(body))
    assert type(err) is RemoteServerError and "model crashed" in err.message and err.retryable


def test_redirect_is_reported_with_its_target() -> None:
    err = fail(
        lambda r: httpx.Response(307, headers={"location": "https://elsewhere.test/v1/chat/completions"})
    )
    assert type(err) is RemoteProtocolError
    assert err.status == 307 and "https://elsewhere.test/v1/chat/completions" in err.message


# --- HTTP status mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, RemoteRequestError, False),
        (401, RemoteAuthError, False),
        (403, RemoteAuthError, False),
        (404, RemoteRequestError, False),
        (413, RemoteRequestError, False),
        (422, RemoteRequestError, False),
        (429, RemoteRateLimitError, True),
        (500, RemoteServerError, True),
        (502, RemoteServerError, True),
        (503, RemoteServerError, True),
    ],
)
def test_status_mapping(status: int, cls: type[RemoteError], retryable: bool) -> None:
    body = {"error": {"message": f"server says no ({status})", "type": "x", "code": None}}
    err = fail(lambda r: httpx.Response(status, json=body))
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status == status
    assert f"HTTP {status}" in err.message
    assert f"server says no ({status})" in err.message
    assert "http://remote.test/v1/chat/completions" in err.message
    assert isinstance(err, EdgekitError) and err.hint


def test_error_detail_variants_and_truncation() -> None:
    long = "x" * 5000
    err = fail(lambda r: httpx.Response(400, json={"error": {"message": long}}))
    detail = err.message.split("HTTP 400: ", 1)[1]
    assert len(detail) <= 200 and detail.endswith("...")
    err = fail(lambda r: httpx.Response(400, json={"error": "plain string error"}))
    assert "plain string error" in err.message
    err = fail(lambda r: httpx.Response(422, json={"detail": [{"loc": ["body", "x"], "msg": "bad"}]}))
    assert "bad" in err.message
    err = fail(lambda r: httpx.Response(502, html="<html><body>Bad gateway</body></html>"))
    assert type(err) is RemoteServerError and "<html>" not in err.message
    err = fail(lambda r: httpx.Response(500, text="upstream exploded"))
    assert "upstream exploded" in err.message


def test_retry_after_seconds() -> None:
    err = fail(
        lambda r: httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"message": "slow"}})
    )
    assert isinstance(err, RemoteRateLimitError)
    assert err.retry_after == 7.0  # type: ignore[attr-defined]
    assert "slow" in err.message


def test_retry_after_http_date_and_absent() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    err = fail(lambda r: httpx.Response(429, headers={"Retry-After": when}))
    assert 20 <= err.retry_after <= 31  # type: ignore[attr-defined]
    err = fail(lambda r: httpx.Response(429))
    assert err.retry_after is None  # type: ignore[attr-defined]
    err = fail(lambda r: httpx.Response(429, headers={"Retry-After": "soon"}))
    assert err.retry_after is None  # type: ignore[attr-defined]


# --- transport errors ---------------------------------------------------------------------------


def raising(exc_cls: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_cls("boom", request=request)

    return handler


@pytest.mark.parametrize(
    ("exc_cls", "cls"),
    [
        (httpx.ConnectError, RemoteUnreachableError),
        (httpx.ConnectTimeout, RemoteTimeoutError),
        (httpx.ReadTimeout, RemoteTimeoutError),
        (httpx.WriteTimeout, RemoteTimeoutError),
        (httpx.PoolTimeout, RemoteTimeoutError),
        (httpx.RemoteProtocolError, RemoteProtocolError),
        (httpx.ReadError, RemoteUnreachableError),
        (httpx.ProxyError, RemoteUnreachableError),
        (httpx.UnsupportedProtocol, RemoteUnreachableError),
    ],
)
def test_transport_errors_are_mapped(exc_cls: type[httpx.TransportError], cls: type[RemoteError]) -> None:
    err = fail(raising(exc_cls))
    assert type(err) is cls
    assert err.retryable
    assert "http://remote.test/v1/chat/completions" in err.message


def test_connect_timeout_message_names_the_timeout() -> None:
    err = fail(raising(httpx.ConnectTimeout), connect_timeout=1.5)
    assert "connect timeout 1.5s" in err.message


@pytest.mark.parametrize(
    ("exc_cls", "cls"),
    [
        (httpx.ReadTimeout, RemoteTimeoutError),
        (httpx.ReadError, RemoteProtocolError),
        (httpx.RemoteProtocolError, RemoteProtocolError),
    ],
)
def test_errors_mid_stream(exc_cls: type[httpx.TransportError], cls: type[RemoteError]) -> None:
    got: list[str] = []

    def body() -> Iterator[bytes]:
        yield sse(delta("partial"))
        raise exc_cls("connection went away")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    with pytest.raises(RemoteError) as info, backend(handler) as b:
        got.extend(c.text for c in b.stream(MSGS, PARAMS))
    assert type(info.value) is cls
    assert got == ["partial"]
    if cls is RemoteProtocolError:
        assert "stream ended early" in info.value.message


# --- /models --------------------------------------------------------------------------------------


def test_models_lists_ids() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"object": "list", "data": [{"id": "a"}, {"id": "b", "object": "model"}]}
        )

    with backend(handler) as b:
        assert b.models() == ["a", "b"]
    assert seen[0].method == "GET" and str(seen[0].url) == "http://remote.test/v1/models"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        (httpx.Response(200, text="not json"), RemoteProtocolError),
        (httpx.Response(200, json=[1, 2]), RemoteProtocolError),
        (httpx.Response(200, json={"data": "x"}), RemoteProtocolError),
        (httpx.Response(200, json={"data": [{"name": "x"}]}), RemoteProtocolError),
        (httpx.Response(401, json={"error": {"message": "no"}}), RemoteAuthError),
        (httpx.Response(404, text="nope"), RemoteRequestError),
        (httpx.Response(503), RemoteServerError),
    ],
)
def test_models_errors(response: httpx.Response, cls: type[RemoteError]) -> None:
    with pytest.raises(RemoteError) as info, backend(lambda r: response) as b:
        b.models()
    assert type(info.value) is cls
    assert "http://remote.test/v1/models" in info.value.message


def test_models_transport_errors() -> None:
    for exc_cls, cls in [
        (httpx.ConnectError, RemoteUnreachableError),
        (httpx.ReadTimeout, RemoteTimeoutError),
    ]:
        with pytest.raises(cls), backend(raising(exc_cls)) as b:
            b.models()


# --- secrets ----------------------------------------------------------------------------------------


def _all_text(err: BaseException) -> str:
    return "\n".join(
        [
            str(err),
            repr(err),
            getattr(err, "message", ""),
            getattr(err, "hint", ""),
            *traceback.format_exception(err),
        ]
    )


@pytest.mark.parametrize(
    "handler",
    [
        lambda r: httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {KEY}"}}),
        lambda r: httpx.Response(500, text=f"debug dump: headers=Authorization: Bearer {KEY}"),
        lambda r: sse_response(sse({"error": {"message": f"bad key {KEY}"}})),
        lambda r: sse_response(sse(delta("x")) + f"data: {{{KEY}\n\n".encode()),
        raising(httpx.ConnectError),
        raising(httpx.ReadTimeout),
    ],
)
def test_key_never_leaks(handler: Callable[[httpx.Request], httpx.Response]) -> None:
    b = backend(handler)
    assert KEY not in repr(b) and KEY not in str(b)
    assert "EDGEKIT_REMOTE_API_KEY" in repr(b)
    err = fail(handler)
    text = _all_text(err)
    assert KEY not in text
    assert "remote.test" in text
    b.close()


def test_key_is_masked_when_echoed() -> None:
    err = fail(
        lambda r: httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {KEY}"}})
    )
    assert "Incorrect API key provided: ***" in err.message


def test_credentials_in_url_are_not_shown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "x"}})

    b = backend(handler, base_url="http://alice:hunter2@remote.test/v1?api-key=qsecret")
    assert "hunter2" not in repr(b) and "qsecret" not in repr(b)
    err = fail(handler, base_url="http://alice:hunter2@remote.test/v1?api-key=qsecret")
    b.close()
    text = _all_text(err)
    assert "hunter2" not in text and "alice" not in text and "qsecret" not in text
    assert "http://remote.test/v1" in err.message


@pytest.mark.parametrize("bad", ["sk-ünïcode", "sk-two\nlines"])
def test_unsendable_key_is_input_error_without_the_key(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("EDGEKIT_REMOTE_API_KEY", bad)
    with pytest.raises(InputError) as info:
        RemoteBackend(BASE, "m")
    assert bad not in _all_text(info.value)
    assert "EDGEKIT_REMOTE_API_KEY" in info.value.message


@pytest.mark.parametrize("exc_cls", [httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError])
def test_connection_dropped_before_any_response_is_retried_once(exc_cls: type[httpx.TransportError]) -> None:
    """A stale kept-alive connection fails with no response at all; one retry on a fresh one fixes it."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise exc_cls("Server disconnected without sending a response.", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        return sse_response(STANDARD)

    with backend(handler) as b:
        assert b.chat(MSGS, PARAMS).text == "Hello wörld"
        assert len(calls) == 2
        calls.clear()
        assert b.models() == ["m"]
        assert len(calls) == 2
    # the retry sends the same request
    assert calls[0].content == calls[1].content


@pytest.mark.parametrize(
    "exc_cls", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout]
)
def test_connect_errors_and_timeouts_are_not_retried(exc_cls: type[httpx.TransportError]) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise exc_cls("nope", request=request)

    fail(handler)
    assert len(calls) == 1


def test_errors_after_the_response_started_are_not_retried() -> None:
    calls: list[httpx.Request] = []

    def body() -> Iterator[bytes]:
        yield sse(delta("partial"))
        raise httpx.RemoteProtocolError("incomplete chunked read")

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    assert type(fail(handler)) is RemoteProtocolError
    assert len(calls) == 1
