"""The cascade with real parts: the 135M default model on device and llama-cpp-python's own server
serving Qwen2.5-Coder-0.5B-Instruct on loopback as the remote."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import edgekit
from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.policy import Policy, default_policy_path, resolve_policy
from edgekit.cascade.resilience import CircuitBreaker
from edgekit.cascade.router import Router
from edgekit.cascade.trace import TraceStore

from ..servers import LlamaServer, free_port, llama_server

pytestmark = pytest.mark.model
KEY_ENV = "EDGEKIT_TEST_CASCADE_KEY"


@pytest.fixture(scope="module")
def qwen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = edgekit.pull("qwen2.5-coder-0.5b-instruct")
    with llama_server(model, tmp_path_factory.mktemp("qwen")) as server:
        yield server


@pytest.fixture(scope="module")
def tiny(default_model_path: Path) -> Iterator[edgekit.Model]:
    with edgekit.load(default_model_path, n_ctx=2048) as model:
        yield model


def router_for(tiny: edgekit.Model, base_url: str, model_id: str, tmp_path: Path) -> Router:
    policy = Policy.load(default_policy_path())
    remote = edgekit.remote(base_url, model_id, api_key_env=KEY_ENV, timeout=120)
    return Router(
        policy,
        local=[tiny],
        remote=remote,
        traces=TraceStore(tmp_path / "traces.jsonl"),
        ledger=BudgetLedger(policy.budget, tmp_path / "budget.json"),
        breaker=CircuitBreaker(failures=2, reset_after_s=60),
    )


def test_domain_gate_escalates_to_the_real_remote(
    tiny: edgekit.Model, qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, qwen_server.api_key)
    router = router_for(tiny, qwen_server.base_url, qwen_server.model_id, tmp_path)
    result = router.route("What is the usual adult dosage of paracetamol? One sentence.", max_tokens=40)
    assert result.route == "remote:remote" and result.completion.backend == "remote"
    assert result.completion.text.strip() and result.escalation_reason.startswith("gate keywords:domain")  # type: ignore[union-attr]
    trace = router.traces.read()[-1]  # type: ignore[union-attr]
    assert trace["route"] == "remote:remote" and trace["remote_tokens"] > 0
    assert router.ledger.spent_today() == trace["remote_tokens"]


def test_low_confidence_local_answer_escalates(
    tiny: edgekit.Model, qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, qwen_server.api_key)
    router = router_for(tiny, qwen_server.base_url, qwen_server.model_id, tmp_path)
    # The tiny model is unsure of this translation (low mean token probability, high entropy).
    result = router.route("Translate 'good morning' into German.", max_tokens=24)
    assert result.route == "remote:remote", result.rejections
    assert result.escalation_reason and result.escalation_reason.startswith("signals: tiny:")
    assert result.rejections and "mean token probability" in result.rejections[0]


@contextmanager
def second_opinion(tiny: edgekit.Model, server: LlamaServer, policy_name: str) -> Iterator[Router]:
    """A shipped policy whose first tier has a cross-check: Qwen 0.5B loaded on device beside the tiny
    model, the real remote."""
    policy = Policy.load(resolve_policy(policy_name))
    remote = edgekit.remote(server.base_url, server.model_id, api_key_env=KEY_ENV, timeout=120)
    with edgekit.load(edgekit.pull(policy.tiers[0].cross_check.model), n_ctx=2048) as second:  # type: ignore[union-attr]
        yield Router(policy, local=[tiny], remote=remote, cross_check={"tiny": second}, traces=None)


def test_cross_check_policy_keeps_agreed_answers_and_escalates_disputed_ones(
    tiny: edgekit.Model, qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped cross-check policy with real parts: Qwen 0.5B on device as the second opinion, the
    shipped learned acceptance model, the real remote."""
    monkeypatch.setenv(KEY_ENV, qwen_server.api_key)
    with second_opinion(tiny, qwen_server, "cross-check") as router:
        agreed = router.route("Which city is the capital of Germany? Answer briefly.", max_tokens=64)
        assert agreed.route == "local:tiny" and "Berlin" in agreed.completion.text
        assert "cross-check:tiny" in agreed.latency_ms
        disputed = router.route("Which city is the capital of Spain? Answer briefly.", max_tokens=64)
        assert disputed.route == "remote:remote", disputed.rejections
        assert "learned acceptance score" in disputed.rejections[0]
        assert "cross-check agreement 0.00" in disputed.rejections[0]


def test_remote_down_degrades_with_the_local_answer(tiny: edgekit.Model, tmp_path: Path) -> None:
    router = router_for(tiny, f"http://127.0.0.1:{free_port()}/v1", "nobody", tmp_path)
    result = router.route("Translate 'good morning' into German.", max_tokens=24)
    assert result.route == "degraded:tiny" and result.completion.text.strip()
    assert result.degraded_reason and "remote failed" in result.degraded_reason
    assert router.traces.read()[-1]["degraded_reason"] == result.degraded_reason  # type: ignore[union-attr]


def test_a_prompt_too_long_for_the_local_model_degrades_cut_to_fit_when_the_remote_is_down(
    tiny: edgekit.Model, tmp_path: Path
) -> None:
    router = router_for(tiny, f"http://127.0.0.1:{free_port()}/v1", "nobody", tmp_path)
    notes = "The meeting notes mention budgets, rooms and dates. " * 300  # about 3,000 tokens
    prompt = f"Summarize these notes in one sentence.\n{notes}\nWhat is the main topic?"
    result = router.route(prompt, max_tokens=16)
    assert result.route == "degraded:tiny" and result.completion.text.strip()
    reason = result.degraded_reason or ""
    assert "cut from 3" in reason and "to fit the local context" in reason  # after why the remote could not
    assert result.escalation_reason and "context" in result.escalation_reason  # the context gate asked
    assert router.traces.read()[-1]["degraded_reason"] == reason  # type: ignore[union-attr]


def test_edgekit_serve_runs_the_cascade(qwen_server: LlamaServer, tmp_path: Path) -> None:
    """OpenAI clients talk to `edgekit serve --cascade`; each answer says which route produced it."""
    log, traces = tmp_path / "serve.log", tmp_path / "traces.jsonl"
    env = {
        **os.environ,
        "EDGEKIT_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "EDGEKIT_REMOTE_URL": qwen_server.base_url,
        "EDGEKIT_REMOTE_API_KEY": qwen_server.api_key,
        "EDGEKIT_TRACE_FILE": str(traces),
    }
    proc, root = _start_serve(log, env, "--cascade")
    try:
        with httpx.Client(base_url=root + "/v1", timeout=180) as client:
            remote = client.post(
                "/chat/completions",
                json={
                    "model": "cascade",
                    "max_tokens": 32,
                    "messages": [
                        {
                            "role": "user",
                            "content": "What is the usual adult dosage of paracetamol? One sentence.",
                        }
                    ],
                },
            ).json()
            assert remote["choices"][0]["message"]["content"].strip()
            assert remote["edgekit_route"]["route"] == "remote:remote"
            assert remote["edgekit_route"]["escalation_reason"].startswith("gate keywords:domain")
            streamed = client.post(
                "/chat/completions",
                json={
                    "model": "cascade",
                    "max_tokens": 32,
                    "stream": True,
                    "messages": [{"role": "user", "content": "Which city is the capital of France?"}],
                },
            )
            assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
            assert '"edgekit_route"' in streamed.text
        routes = [json.loads(line)["route"] for line in traces.read_text().splitlines()]
        assert routes[0] == "remote:remote" and len(routes) == 2
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]


def _start_serve(log: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m edgekit serve --port 0 ARGS`` with its output in ``log``: (the process, its root URL)
    once it answers /health."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return proc, _wait_for_serve(proc, log)


def _wait_for_serve(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))
        if found:
            try:
                if httpx.get(found.group(1) + "/health", timeout=2).status_code == 200:
                    return found.group(1)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"edgekit serve --cascade did not become healthy:\n{log.read_text(errors='replace')[-3000:]}")


def test_edgekit_run_through_the_cascade(qwen_server: LlamaServer, tmp_path: Path) -> None:
    """`edgekit run --cascade`: a domain prompt goes to the real remote; with none it degrades, saying so."""
    base = {**os.environ, "EDGEKIT_THREADS": "1", "EDGEKIT_TRACE_FILE": str(tmp_path / "t.jsonl")}
    prompt = "What is the usual adult dosage of paracetamol? One sentence."
    cmd = [sys.executable, "-m", "edgekit", "run", "--cascade", "--max-tokens", "24", "--temperature", "0"]
    up = {**base, "EDGEKIT_REMOTE_URL": qwen_server.base_url, "EDGEKIT_REMOTE_API_KEY": qwen_server.api_key}
    done = subprocess.run([*cmd, "--json", prompt], capture_output=True, text=True, env=up, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["text"].strip() and answer["edgekit_route"]["route"] == "remote:remote"
    down = subprocess.run(
        [*cmd, prompt], capture_output=True, text=True, env={**base, "EDGEKIT_REMOTE_URL": ""}, timeout=300
    )
    assert down.returncode == 0, down.stderr
    answer_text, marker = down.stdout.strip().rsplit("\n", 1)
    assert answer_text.strip()
    # the degraded answer to a question the domain gate escalates is marked on stdout too
    assert marker == "[unvetted: gate keywords:domain wanted a larger model; no remote tier is configured]"
    note, route = down.stderr.strip().splitlines()
    assert note.startswith("note: no remote tier is configured") and "EDGEKIT_REMOTE_URL" in note
    assert route == "[degraded:tiny] no remote tier is configured"


def test_eval_router_saves_answers_and_resumes(qwen_server: LlamaServer, tmp_path: Path) -> None:
    """`edgekit eval-router` against the real remote: per-item results with both answers, kept in a
    .partial file until complete; --resume asks only the prompts it has no answers for."""
    rows = [
        ("f1", "fact", "Which city is the capital of France? Answer briefly.", "paris"),
        ("f2", "fact", "Which city is the capital of Italy? Answer briefly.", "rome"),
        ("t1", "translation", "Translate 'dog' into German. Reply with the translation only.", "hund"),
    ]
    data = tmp_path / "items.jsonl"

    def write(n: int) -> None:
        items = [
            {"id": i, "category": c, "prompt": p, "check": {"type": "any", "values": [v]}}
            for i, c, p, v in rows[:n]
        ]
        data.write_text("".join(json.dumps(item) + "\n" for item in items))

    env = {
        **os.environ,
        "EDGEKIT_THREADS": "1",
        "EDGEKIT_REMOTE_URL": qwen_server.base_url,
        "EDGEKIT_REMOTE_API_KEY": qwen_server.api_key,
    }
    saved = tmp_path / "obs.jsonl"
    cmd = [sys.executable, "-m", "edgekit", "eval-router", "--data", str(data), "--observations", str(saved)]
    cmd += ["--max-tokens", "24"]
    write(2)
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["f1", "f2"] and all(r["remote_answer"] for r in lines)
    assert not (tmp_path / "obs.jsonl.partial").exists()
    write(3)
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "reused 2 saved answers; asked 1 prompts" in again.stderr
    resumed = [json.loads(line) for line in saved.read_text().splitlines()]
    assert resumed[:2] == lines and resumed[2]["id"] == "t1"
    no_remote = {**env, "EDGEKIT_REMOTE_URL": ""}
    replay = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=no_remote, timeout=600)
    assert replay.returncode == 0, "everything is saved: the remote is not needed"


def test_shadow_policy_is_judged_on_the_real_answer(
    tiny: edgekit.Model, qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve --shadow's engine with real parts: the router escalates the tiny model's unsure sum (mean
    probability about 0.48 < 0.777) as before; the lenient shadow policy, judging the same real local
    answer, would have kept it."""
    monkeypatch.setenv(KEY_ENV, qwen_server.api_key)
    lenient = tmp_path / "lenient.toml"
    lenient.write_text(
        default_policy_path().read_text().replace("min_mean_prob = 0.777", "min_mean_prob = 0.05")
    )
    policy = Policy.load(default_policy_path())
    remote = edgekit.remote(qwen_server.base_url, qwen_server.model_id, api_key_env=KEY_ENV, timeout=120)
    traces = TraceStore(tmp_path / "traces.jsonl")
    router = Router(policy, local=[tiny], remote=remote, traces=traces, shadow=Policy.load(lenient))
    result = router.route("What is 5 plus 2? Reply with the number only.", max_tokens=64)
    assert result.route == "remote:remote", result.rejections
    assert traces.read()[-1]["shadow"] == {"policy": "lenient.toml", "route": "local", "detail": "local:tiny"}


def test_chain_policy_keeps_the_second_models_answer_before_the_remote(
    tiny: edgekit.Model, qwen_server: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped chain policy with real parts, its tiny tier made to reject every answer (min_score
    0.999, whatever the tiny model says on this CPU): Qwen 0.5B's answer, already generated as the
    cross-check, is trusted by the shipped check-accept.json and kept: no remote call."""
    monkeypatch.setenv(KEY_ENV, qwen_server.api_key)
    shipped = resolve_policy("chain")
    strict = tmp_path / "chain.toml"
    strict.write_text(
        shipped.read_text()
        .replace(
            '{ learned = "tiny-accept.json" }',
            f'{{ learned = "{shipped.parent / "tiny-accept.json"}", min_score = 0.999 }}',
        )
        .replace('learned = "check-accept.json"', f'learned = "{shipped.parent / "check-accept.json"}"')
    )
    with second_opinion(tiny, qwen_server, str(strict)) as router:
        kept = router.route("What is 5 plus 2? Reply with the number only.", max_tokens=64)
        assert kept.route == "local:tiny:cross-check", kept.rejections
        assert kept.completion.text.strip() == "7" and "remote:remote" not in kept.latency_ms
        assert "learned acceptance score" in kept.rejections[0] and "< 0.999" in kept.rejections[0]
        # The 0.5B answer passes on its own evidence only: a cut-off one is never kept.
        cut = router.route("Write a long story about a dragon.", max_tokens=8)
        assert cut.route == "remote:remote", cut.rejections
        assert any("cross-check: cut off by the token limit" in r for r in cut.rejections)


class _FlakyRemote:
    """An OpenAI-compatible loopback endpoint that fails every third chat request with a 500 and answers
    the others (usage 10 + 5 tokens, streamed or not as asked); it counts what it answered, as a bill
    would."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        remote = self
        self.lock = threading.Lock()
        self.requests = self.answered = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                stream = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))["stream"]
                with remote.lock:
                    remote.requests += 1
                    fail = remote.requests % 3 == 0
                    remote.answered += not fail
                if fail:
                    body = b'{"error": {"message": "overloaded", "type": "server_error"}}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                delta = {"content": "Remote answer."}
                if not stream:
                    choice = {"index": 0, "message": {"role": "assistant", **delta}, "finish_reason": "stop"}
                    self._send(json.dumps({"choices": [choice], "usage": usage}).encode(), "application/json")
                    return
                events = [
                    {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {"choices": [], "usage": usage},
                ]
                body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
                self._send(body, "text/event-stream")

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _FlakyRemote:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_serve_cascade_with_four_slots_and_a_flaky_remote_loses_no_answer_and_keeps_an_exact_ledger(
    default_model_path: Path, tmp_path: Path
) -> None:
    """`serve --cascade --concurrency 4`, 16 clients, every request escalated (a keyword gate), a remote that
    fails one call in three: every request gets a 200 (retried, or degraded with the local answer), and
    the ledger holds exactly the tokens the remote answered (15 each), however the four slots interleave."""
    cache = tmp_path / "cache"
    (cache / "smollm2-135m-instruct").mkdir(parents=True)
    os.symlink(default_model_path.parent, cache / "smollm2-135m-instruct" / default_model_path.parent.name)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "version = 1\n[defaults]\ntemperature = 0.0\nmax_tokens = 8\n"
        "[[tiers]]\nname = 'tiny'\nkind = 'local'\nmodel = 'smollm2-135m-instruct'\n"
        "accept = { min_mean_prob = 0.0 }\n"
        "[[tiers]]\nname = 'remote'\nkind = 'remote'\nmodel = 'flaky'\nbase_url_env = 'EDGEKIT_REMOTE_URL'\n"
        "api_key_env = 'EDGEKIT_REMOTE_API_KEY'\nretries = 2\n"
        "[budget]\nmax_remote_tokens_per_request = 2048\nmax_remote_tokens_per_day = 1000000\n"
        "[[gates]]\nkind = 'keywords'\nlabel = 'always'\npatterns = ['\\bplease\\b']\n"
    )
    log = tmp_path / "serve.log"
    with _FlakyRemote() as remote:
        env = {
            **os.environ,
            "EDGEKIT_THREADS": "1",
            "OMP_WAIT_POLICY": "passive",
            "PYTHONUNBUFFERED": "1",
            "EDGEKIT_CACHE_DIR": str(cache),
            "EDGEKIT_REMOTE_URL": remote.url,
            "EDGEKIT_REMOTE_API_KEY": "sk-flaky",
            "EDGEKIT_TRACE_FILE": str(tmp_path / "traces.jsonl"),
        }
        proc, root = _start_serve(
            log, env, "--policy", str(policy), "--concurrency", "4", "--max-queue", "64"
        )
        try:

            def ask(i: int) -> httpx.Response:
                body = {
                    "messages": [{"role": "user", "content": f"Question {i}, please."}],
                    "stream": i % 2 == 1,
                }
                return httpx.post(root + "/v1/chat/completions", json=body, timeout=120)

            with ThreadPoolExecutor(16) as pool:
                responses = list(pool.map(ask, range(48)))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert [r.status_code for r in responses] == [200] * 48, [
        r.text[:200] for r in responses if r.status_code != 200
    ]
    assert remote.answered > 0 and remote.requests > remote.answered  # some calls failed, some were retried
    ledger = json.loads((tmp_path / "budget.json").read_text())
    assert list(ledger.values()) == [15 * remote.answered]
    routes = [json.loads(line)["route"] for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert len(routes) == 48 and routes.count("remote:remote") == remote.answered
