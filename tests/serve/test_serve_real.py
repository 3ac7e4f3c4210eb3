"""`edgekit serve` as users run it: a real process on a free loopback port serving the default model, spoken
to through edgekit's own RemoteBackend and through raw HTTP (the OpenAI JSON shapes)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgekit.errors import RemoteAuthError, RemoteRequestError
from edgekit.runtime.remote import RemoteBackend
from edgekit.runtime.types import ChatMessage, GenerationParams

pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct"
ENCODER = "multilingual-e5-small-int8"  # listed for /v1/embeddings
KEY_ENV = "EDGEKIT_TEST_SERVE_KEY"
START_DEADLINE_S = 120.0
PROMPT: list[ChatMessage] = [{"role": "user", "content": "Name three colours of the rainbow."}]
LONG = [{"role": "user", "content": "Write a very long story about a dragon who learns to paint."}]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base_url: str  # .../v1
    root: str
    api_key: str | None
    log: Path

    def diagnose(self) -> str:
        rc = self.proc.poll()
        state = "still running" if rc is None else f"exited with status {rc}"
        return f"edgekit serve {state}; log tail:\n{self.log.read_text(errors='replace')[-4000:]}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.root + "/health", timeout=5).json()
        return data


def start_server(log: Path, *args: str, api_key: str | None = None, max_files: int | None = None) -> Served:
    """``python -m edgekit serve --port 0 ...``; the port comes from its first line on stderr.
    ``max_files``: the process's open-file limit (RLIMIT_NOFILE)."""
    env = {**os.environ, "EDGEKIT_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "edgekit", "serve", "--model", MODEL, "--port", "0", *args]
    if api_key:
        env[KEY_ENV] = api_key
        cmd += ["--api-key-env", KEY_ENV]
    with log.open("wb") as out:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=None if max_files is None else lambda: _limit_files(max_files),
        )
    deadline = time.monotonic() + START_DEADLINE_S
    served: Served | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if served is None:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))
            if found:
                served = Served(proc, found.group(1) + "/v1", found.group(1), api_key, log)
        if served is not None:
            try:
                if httpx.get(served.root + "/health", timeout=2).status_code == 200:
                    return served
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"edgekit serve did not become healthy: rc={proc.poll()}\n{log.read_text(errors='replace')}")


def _limit_files(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    return proc.returncode


@pytest.fixture(scope="module")
def server(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("edgekit_serve") / "server.log"
    key = "sk-edgekit-" + secrets.token_hex(12)
    served = start_server(
        log,
        *("--n-ctx", "1024", "--concurrency", "1", "--max-queue", "1", "--queue-timeout", "60"),
        *("--log-level", "info"),
        api_key=key,
    )
    try:
        yield served
    finally:
        stop(served.proc)
    assert key not in log.read_text(errors="replace")  # the key is never logged


@pytest.fixture
def remote(server: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemoteBackend]:
    assert server.api_key
    monkeypatch.setenv(KEY_ENV, server.api_key)
    backend = RemoteBackend(server.base_url, MODEL, api_key_env=KEY_ENV, timeout=120)
    try:
        yield backend
    finally:
        backend.close()
    assert server.proc.poll() is None, server.diagnose()


def sse_payloads(lines: Iterator[str]) -> list[Any]:
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_health_and_models(remote: RemoteBackend, server: Served) -> None:
    health = server.health()
    assert health["status"] == "ok" and health["model"] == MODEL
    assert (health["concurrency"], health["max_queue"]) == (1, 1)
    assert remote.models() == [MODEL, ENCODER]


def test_remote_backend_chat_and_stream_agree(remote: RemoteBackend) -> None:
    params = GenerationParams(max_tokens=24, temperature=0.0, seed=7)
    chunks = list(remote.stream(PROMPT, params))
    whole = remote.complete(PROMPT, params)
    streamed = "".join(c.text for c in chunks)
    assert streamed.strip() and streamed == whole.text  # greedy: both paths give the same text
    last = chunks[-1]
    assert last.finish_reason == whole.finish_reason in ("stop", "length")
    assert last.usage is not None and last.usage.prompt_tokens > 0  # include_usage is honored
    assert last.usage == whole.usage
    assert 0 < whole.usage.completion_tokens <= 24


def test_raw_openai_shapes(server: Served) -> None:
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 8, "temperature": 0}
    with httpx.Client(headers=server.headers(), timeout=60) as http:
        data = http.post(server.base_url + "/chat/completions", json=body).json()
        assert data["object"] == "chat.completion" and data["model"] == MODEL
        logged = server.log.read_text(errors="replace")  # at info: one line per answer, without its text
        assert re.search(rf"chat\.completions \w+: \d+\+\d+ tokens in \d+ ms, route local:{MODEL}", logged)
        answer = data["choices"][0]["message"]["content"].strip()
        assert len(answer) < 12 or answer not in logged
        assert data["id"].startswith("chatcmpl-")
        choice = data["choices"][0]
        assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
        assert choice["message"]["content"] and choice["finish_reason"] in ("stop", "length")
        usage = data["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["completion_tokens"] <= 8

        stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with http.stream("POST", server.base_url + "/chat/completions", json=stream_body) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            events = sse_payloads(resp.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == choice["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == choice["finish_reason"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage


def test_auth(server: Served) -> None:
    url = server.base_url + "/models"
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        resp = httpx.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(url, headers=server.headers()).status_code == 200
    assert httpx.get(server.root + "/health").status_code == 200


def test_wrong_key_through_remote_backend(server: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-" + secrets.token_hex(4))
    with (
        RemoteBackend(server.base_url, MODEL, api_key_env=KEY_ENV) as backend,
        pytest.raises(RemoteAuthError),
    ):
        backend.chat(PROMPT, GenerationParams(max_tokens=2))


def test_invalid_body_is_400_in_openai_format(server: Served) -> None:
    url = server.base_url + "/chat/completions"
    resp = httpx.post(url, headers=server.headers(), json={"messages": [{"role": "robot", "content": "x"}]})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == "messages[0].role"
    resp = httpx.post(url, headers=server.headers(), content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


COLOURS = {
    "type": "object",
    "properties": {"colours": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}},
    "required": ["colours"],
    "additionalProperties": False,
}


def test_response_format_json_schema_is_honored_streaming_or_not(server: Served) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "colours", "schema": COLOURS}}
    body = {"messages": PROMPT, "response_format": fmt, "max_tokens": 60, "seed": 0}
    url = server.base_url + "/chat/completions"
    resp = httpx.post(url, headers=server.headers(), json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    assert set(json.loads(resp.json()["choices"][0]["message"]["content"])) == {"colours"}
    with httpx.stream("POST", url, headers=server.headers(), json={**body, "stream": True}, timeout=120) as r:
        events = sse_payloads(r.iter_lines())
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )
    assert set(json.loads(text)) == {"colours"}


def test_tools_answer_with_a_validated_tool_call(server: Served) -> None:
    params = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
    }
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {**params, "additionalProperties": False}},
        }
    ]
    body = {
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": tools,
        "max_tokens": 60,
        "seed": 0,
    }
    url = server.base_url + "/chat/completions"
    choice = httpx.post(url, headers=server.headers(), json=body, timeout=120).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and "city" in json.loads(call["function"]["arguments"])
    with httpx.stream("POST", url, headers=server.headers(), json={**body, "stream": True}, timeout=120) as r:
        events = sse_payloads(r.iter_lines())
    deltas = [e["choices"][0] for e in events if isinstance(e, dict) and e.get("choices")]
    assert deltas[-1]["finish_reason"] == "tool_calls"
    assert any(d["delta"].get("tool_calls") for d in deltas)


def test_context_overflow_is_400_streaming_or_not(remote: RemoteBackend) -> None:
    long_prompt: list[ChatMessage] = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 400}]
    params = GenerationParams(max_tokens=8, temperature=0.0)
    with pytest.raises(RemoteRequestError) as info:
        remote.complete(long_prompt, params)
    assert info.value.status == 400 and "context window is 1024" in info.value.message
    with pytest.raises(RemoteRequestError) as info2:  # refused before the stream starts, not cut mid-way
        list(remote.stream(long_prompt, params))
    assert info2.value.status == 400
    assert remote.models() == [MODEL, ENCODER]


def test_readme_serving_request_works(server: Served) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Serving", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"curl -s (\S+) .*-d '(\{.*\})'", section)
    assert found, "README's Serving section shows a curl request"
    assert found.group(1) == "http://127.0.0.1:8000/v1/chat/completions"
    body = json.loads(found.group(2))
    resp = httpx.post(server.base_url + "/chat/completions", headers=server.headers(), json=body, timeout=60)
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]


def test_back_pressure_answers_429_and_stays_healthy(server: Served) -> None:
    """--concurrency 1 --max-queue 1: of six long requests at once, one runs, one waits, the rest get 429."""
    body = {"messages": LONG, "max_tokens": 120, "temperature": 0}
    barrier = threading.Barrier(6)

    def post(_: int) -> httpx.Response:
        barrier.wait()
        return httpx.post(
            server.base_url + "/chat/completions", headers=server.headers(), json=body, timeout=120
        )

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, [(r.status_code, r.text) for r in responses]
    assert statuses.count(200) >= 1 and statuses.count(429) >= 3, statuses
    for resp in responses:
        if resp.status_code == 429:
            assert resp.json()["error"]["code"] == "queue_full" and int(resp.headers["retry-after"]) >= 1
        else:
            assert resp.json()["usage"]["completion_tokens"] > 0
    health = server.health()
    assert (health["status"], health["active"], health["queued"]) == ("ok", 0, 0)


def test_client_disconnect_mid_stream_frees_the_slot(server: Served) -> None:
    body = {"messages": LONG, "max_tokens": 900, "temperature": 0, "stream": True}  # ~20 s if not stopped
    url = server.base_url + "/chat/completions"
    with httpx.stream("POST", url, headers=server.headers(), json=body, timeout=60) as resp:
        assert resp.status_code == 200
        seen = 0
        for line in resp.iter_lines():
            seen += line.startswith("data: ")
            if seen >= 4:
                break
    assert server.health()["active"] in (0, 1)
    deadline = time.monotonic() + 5
    while server.health()["active"]:
        assert time.monotonic() < deadline, "the slot was not freed after the client left"
        time.sleep(0.05)
    started = time.monotonic()
    resp = httpx.post(
        url,
        headers=server.headers(),
        json={"messages": PROMPT, "max_tokens": 4, "temperature": 0},
        timeout=60,
    )
    assert resp.status_code == 200 and time.monotonic() - started < 15


def test_sigterm_lets_running_streams_finish_then_exits_0(default_model_path: Path, tmp_path: Path) -> None:
    """Two copies (--concurrency 2) each streaming when SIGTERM arrives: both finish with [DONE], the server
    stops accepting, and the process exits 0."""
    served = start_server(tmp_path / "server.log", "--n-ctx", "512", "--concurrency", "2", "--grace", "30")
    try:
        url = served.base_url + "/chat/completions"
        body = {"messages": LONG, "max_tokens": 60, "temperature": 0, "stream": True}
        started = threading.Barrier(3)

        def stream(_: int) -> list[Any]:
            with httpx.stream("POST", url, json=body, timeout=120) as resp:
                lines = resp.iter_lines()
                first = next(lines)
                started.wait(30)
                return sse_payloads(iter([first, *lines]))

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(stream, i) for i in range(2)]
            started.wait(60)
            assert served.health()["active"] == 2  # two copies generating at once
            served.proc.send_signal(signal.SIGTERM)
            results = [f.result(timeout=120) for f in futures]
        for events in results:
            assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] in ("stop", "length")
        assert served.proc.wait(timeout=60) == 0, served.diagnose()
        with pytest.raises(httpx.ConnectError):
            httpx.get(served.root + "/health", timeout=2)
        assert "Traceback" not in served.log.read_text(errors="replace")
    finally:
        stop(served.proc)


def test_a_stream_still_running_after_the_grace_time_ends_with_an_error_event(
    default_model_path: Path, tmp_path: Path
) -> None:
    """SIGTERM with --grace 0.5 while a long answer streams: the stream ends after the token in hand with
    an error event (code shutting_down) and a complete response (no cut chunked read), and the process
    exits 0 with no traceback."""
    served = start_server(tmp_path / "server.log", "--n-ctx", "1024", "--grace", "0.5")
    try:
        body = {"messages": LONG, "max_tokens": 900, "temperature": 0, "stream": True}  # ~20 s to finish
        with httpx.stream("POST", served.base_url + "/chat/completions", json=body, timeout=60) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            head = [next(lines) for _ in range(6)]  # generating now
            served.proc.send_signal(signal.SIGTERM)
            events = sse_payloads(iter([*head, *lines]))  # raises on a cut connection
        assert events[-1] != "[DONE]" and events[-1]["error"]["code"] == "shutting_down", events[-3:]
        assert all("choices" in e for e in events[:-1])
        assert served.proc.wait(timeout=60) == 0, served.diagnose()
        assert "Traceback" not in served.log.read_text(errors="replace")
    finally:
        stop(served.proc)


def test_idle_and_trickling_clients_are_cut_off_and_health_recovers(
    default_model_path: Path, tmp_path: Path
) -> None:
    """Slowloris under a small open-file limit: a client that trickles its headers, one that trickles a body,
    then more idle connections than the process has descriptors for. Those past the connection cap get a
    503 at once, every other one is closed within --read-timeout (a 408 when no request had begun), and
    /health answers again; a bounded number of connections and seconds, and no traceback in the log."""
    timeout = 2.0
    served = start_server(tmp_path / "server.log", "--read-timeout", str(timeout), max_files=160)
    host, port = httpx.URL(served.root).host, httpx.URL(served.root).port
    assert port is not None
    conns: list[socket.socket] = []
    try:
        header = socket.create_connection((host, port), timeout=10)
        conns.append(header)
        header.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        body = socket.create_connection((host, port), timeout=10)
        conns.append(body)
        body.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"  # promises 1000 bytes, sends one
        )
        for _ in range(200):  # beyond the open-file limit of the server
            conns.append(socket.create_connection((host, port), timeout=10))
        started = time.monotonic()
        answers = []
        for sock in conns:
            sock.settimeout(timeout + 10)
            got = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(4096):
                    got += chunk
            answers.append(got.split(b"\r\n", 1)[0])
        assert time.monotonic() - started < timeout + 10  # every one closed by the server
        assert answers[0] == b"HTTP/1.1 408 Request Timeout" and answers[1] == b""  # the body: cut off
        assert set(answers[2:]) == {b"HTTP/1.1 408 Request Timeout", b"HTTP/1.1 503 Service Unavailable"}
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(served.root + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "/health did not recover: " + served.diagnose()
            time.sleep(0.2)
        assert served.proc.poll() is None, served.diagnose()
        assert "Traceback" not in served.log.read_text(errors="replace")
    finally:
        for sock in conns:
            sock.close()
        stop(served.proc)
