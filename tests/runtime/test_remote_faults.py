"""RemoteBackend against a fault-injecting loopback HTTP server (real sockets, real httpx transport).

Each path prefix of the server is one fault; the backend's base URL picks it: ``http://127.0.0.1:PORT/<fault>/v1``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgekit.errors import (
    RemoteAuthError,
    RemoteError,
    RemoteProtocolError,
    RemoteRateLimitError,
    RemoteRequestError,
    RemoteServerError,
    RemoteTimeoutError,
    RemoteUnreachableError,
)
from edgekit.runtime.remote import RemoteBackend
from edgekit.runtime.types import ChatMessage, GenerationParams, Usage

KEY = "sk-faults-7f3SECRETkeyXYZ"
MSGS: list[ChatMessage] = [{"role": "user", "content": "hi"}]
PARAMS = GenerationParams(max_tokens=8, temperature=0.0)
TIMEOUT = 0.5  # read timeout the slow faults sleep past
STALL = 10.0  # how long a slow fault would sleep if the test did not release it


def _event(obj: object) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _delta(text: str | None, finish: str | None = None) -> bytes:
    d = {} if text is None else {"content": text}
    return _event({"choices": [{"index": 0, "delta": d, "finish_reason": finish}]})


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins handler threads: nothing outlives the fixture
    block_on_close = True
    release: threading.Event

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on purpose here (timeouts); keep stderr quiet


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _start_sse(self, *, chunked: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        fault = self.path.split("/")[1]
        if fault in ("ok", "keepalive"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode())
        elif fault == "html":
            self._send(200, b"<html><body>It works!</body></html>", "text/html")
        elif fault == "slow":
            self.server.release.wait(STALL)
            self._send(200, b'{"data": []}')
        else:
            self._send(404, b'{"error": {"message": "no such path"}}')

    def do_POST(self) -> None:
        self._read_body()
        fault = self.path.split("/")[1]
        if fault == "ok":
            self._start_sse(chunked=True)
            for part in (_delta("Hello"), _delta(", world"), _delta(None, "stop")):
                self._write_chunk(part)
            self._write_chunk(_event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        elif fault == "slow":  # no headers until the client gave up
            self.server.release.wait(STALL)
            self._send(200, b"{}")
        elif fault == "trickle":  # a delta every 0.2 s, each read in time, for up to 10 s in all
            self._start_sse(chunked=True)
            for _ in range(50):
                if self.server.release.wait(0.2):
                    break
                self._write_chunk(_delta("drip "))
        elif fault == "stall":  # headers and one delta, then silence
            self._start_sse(chunked=True)
            self._write_chunk(_delta("first"))
            self.server.release.wait(STALL)
        elif fault == "auth":
            msg = f"Incorrect API key provided: {self.headers.get('Authorization', '')[7:]}"
            self._send(401, json.dumps({"error": {"message": msg, "type": "invalid_request_error"}}).encode())
        elif fault == "ratelimit":
            body = {"error": {"message": "Rate limit reached for requests", "type": "requests"}}
            self._send(429, json.dumps(body).encode(), Retry_After="7")
        elif fault == "boom":
            self._send(
                500, json.dumps({"error": {"message": "internal kaboom", "type": "server_error"}}).encode()
            )
        elif fault == "badreq":
            self._send(400, json.dumps({"error": {"message": "max_tokens is too large"}}).encode())
        elif fault == "malformed":
            self._start_sse(chunked=True)
            self._write_chunk(_delta("ok so far"))
            self._write_chunk(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        elif fault == "cutchunked":  # chunked encoding, connection closed before the terminating chunk
            self._start_sse(chunked=True)
            self._write_chunk(_delta("one"))
            self._write_chunk(_delta(" two"))
            self.wfile.flush()
        elif fault == "keepalive":
            # What llama_cpp.server does when a stream fails after its 200: an empty, well-formed chunked
            # body on a kept-alive connection, then the connection is dropped. Made deterministic here: the
            # next request on this connection is read and left unanswered.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._write_chunk(b"")
            self.connection.settimeout(5)
            try:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
            except OSError:
                pass
            self.close_connection = True
        elif fault == "cuteof":  # body delimited by connection close: clean EOF, but no [DONE]
            self._start_sse(chunked=False)
            self.wfile.write(_delta("one") + _delta(" two"))
        else:
            self._send(404, b'{"error": {"message": "no such path"}}')


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_REMOTE_API_KEY", KEY)


def _backend(server: str, fault: str, **kw: object) -> RemoteBackend:
    return RemoteBackend(f"{server}/{fault}/v1", "fake-model", timeout=TIMEOUT, **kw)  # type: ignore[arg-type]


def _fails(server: str, fault: str) -> tuple[RemoteError, list[str]]:
    got: list[str] = []
    with pytest.raises(RemoteError) as info, _backend(server, fault) as b:
        got.extend(c.text for c in b.stream(MSGS, PARAMS))
    err = info.value
    assert f"{server}/{fault}/v1/chat/completions" in err.message
    assert KEY not in str(err) and KEY not in repr(err)
    return err, got


def test_healthy_path_works(server: str) -> None:
    with _backend(server, "ok") as b:
        assert b.models() == ["fake-model"]
        comp = b.chat(MSGS, PARAMS)
    assert comp.text == "Hello, world"
    assert comp.finish_reason == "stop"
    assert comp.usage == Usage(3, 2)


def test_sleep_past_timeout(server: str) -> None:
    err, got = _fails(server, "slow")
    assert type(err) is RemoteTimeoutError and err.retryable
    assert "read timeout 0.5s" in err.message
    assert got == []


def test_stall_mid_stream(server: str) -> None:
    err, got = _fails(server, "stall")
    assert type(err) is RemoteTimeoutError and err.retryable
    assert got == ["first"]


def test_the_timeout_bounds_the_whole_answer_not_each_read(server: str) -> None:
    """A server that sends a token every 0.2 s never trips a 0.5 s read timeout; the request's timeout
    (here 1 s) still ends it, with a timeout the cascade can degrade on."""
    import time

    started = time.monotonic()
    with (
        pytest.raises(RemoteTimeoutError, match="no complete answer within 1s"),
        _backend(server, "trickle") as b,
    ):
        list(b.stream(MSGS, GenerationParams(max_tokens=8, temperature=0.0, timeout_s=1.0)))
    assert time.monotonic() - started < 3


def test_models_timeout(server: str) -> None:
    with pytest.raises(RemoteTimeoutError), _backend(server, "slow") as b:
        b.models()


def test_401(server: str) -> None:
    err, _ = _fails(server, "auth")
    assert type(err) is RemoteAuthError and not err.retryable
    assert err.status == 401
    assert "Incorrect API key provided: ***" in err.message  # the server echoed the key; it is masked


def test_429_with_retry_after(server: str) -> None:
    err, _ = _fails(server, "ratelimit")
    assert type(err) is RemoteRateLimitError and err.retryable
    assert err.status == 429
    assert err.retry_after == 7.0  # type: ignore[attr-defined]
    assert "Rate limit reached" in err.message


def test_500(server: str) -> None:
    err, _ = _fails(server, "boom")
    assert type(err) is RemoteServerError and err.retryable
    assert err.status == 500 and "internal kaboom" in err.message


def test_400(server: str) -> None:
    err, _ = _fails(server, "badreq")
    assert type(err) is RemoteRequestError and not err.retryable
    assert "max_tokens is too large" in err.message


def test_malformed_json_in_stream(server: str) -> None:
    err, got = _fails(server, "malformed")
    assert type(err) is RemoteProtocolError and err.retryable
    assert "malformed JSON" in err.message
    assert got == ["ok so far"]


@pytest.mark.parametrize("fault", ["cutchunked", "cuteof"])
def test_stream_cut_off(server: str, fault: str) -> None:
    err, got = _fails(server, fault)
    assert type(err) is RemoteProtocolError and err.retryable
    assert "stream ended early" in err.message
    assert got == ["one", " two"]


def test_html_instead_of_api(server: str) -> None:
    with pytest.raises(RemoteProtocolError) as info, _backend(server, "html") as b:
        b.models()
    assert "not JSON" in info.value.message and info.value.retryable


def test_unreachable_port() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/v1"
    with RemoteBackend(url, "m", timeout=TIMEOUT) as b:
        with pytest.raises(RemoteUnreachableError) as info:
            list(b.stream(MSGS, PARAMS))
        assert info.value.retryable
        assert f"{url}/chat/completions" in info.value.message
        with pytest.raises(RemoteUnreachableError):
            b.models()


def test_server_drops_the_kept_alive_connection_after_a_failed_stream(server: str) -> None:
    err, got = _fails(server, "keepalive")
    assert type(err) is RemoteProtocolError and "stream ended early" in err.message and got == []
    with _backend(server, "keepalive") as b:
        with pytest.raises(RemoteProtocolError):
            list(b.stream(MSGS, PARAMS))
        # the pooled connection is dead; the request is retried once on a fresh one
        assert b.models() == ["fake-model"]


def test_per_request_timeout_overrides_the_backend_default(server: str) -> None:
    """A latency class's timeout (GenerationParams.timeout_s) bounds one request, whatever the client's."""
    slow_params = GenerationParams(max_tokens=8, temperature=0.0, timeout_s=TIMEOUT)
    with (
        RemoteBackend(f"{server}/slow/v1", "fake-model", timeout=STALL * 3) as b,
        pytest.raises(RemoteTimeoutError, match=r"read timeout 0\.5s"),
    ):
        b.chat(MSGS, slow_params)
