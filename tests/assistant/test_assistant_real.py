"""The assistant with real parts: the 135M default model on device, the shipped safety policy, and
llama-cpp-python's own server serving Qwen2.5-Coder-0.5B-Instruct on loopback as the remote, with every
request body it receives written to its log; and the official ``openai`` SDK against ``edgekit serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekit
from edgekit.assistant import Answer, Assistant
from edgekit.assistant.session import ChatSession
from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.policy import Policy
from edgekit.cascade.router import Router
from edgekit.cascade.trace import TraceStore
from edgekit.safety import Guard
from edgekit.safety.guard import SafetyBlockedError
from edgekit.safety.policy import SafetyPolicy

from ..serve.test_serve_real import start_server, stop
from ..servers import LlamaServer, llama_server

pytestmark = pytest.mark.model
KEY_ENV = "EDGEKIT_TEST_ASSISTANT_KEY"
EMAIL = "jane.roe@example.org"
AWS_KEY = "AKIAQ3EGRX7JMVXW4B2N"
BLOCK_SECRETS = """
[actions]
secrets = "block"
[classifier]
enabled = false
[language]
supported = ["en"]
"""
POLICY = """
[defaults]
temperature = 0.0
seed = 0
max_tokens = 48
[[tiers]]
name = "tiny"
kind = "local"
model = "smollm2-135m-instruct"
accept = { min_mean_prob = 0.01 }
[[tiers]]
name = "remote"
kind = "remote"
model = "qwen"
base_url_env = "EDGEKIT_TEST_UNUSED_URL"
api_key_env = "EDGEKIT_TEST_ASSISTANT_KEY"
[[gates]]
kind = "keywords"
label = "domain"
patterns = ["\\\\bdosage\\\\b"]
[[gates]]
kind = "safety"
"""


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = edgekit.pull("qwen2.5-coder-0.5b-instruct")
    with llama_server(model, tmp_path_factory.mktemp("qwen"), log_requests=True) as server:
        yield server


@pytest.fixture(scope="module")
def tiny(default_model_path: Path) -> Iterator[edgekit.Model]:
    with edgekit.load(default_model_path, n_ctx=2048, threads=1) as model:
        yield model


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard().warm()  # the shipped policy, classifier included


def assistant_for(
    tiny: edgekit.Model, qwen: LlamaServer, guard: Guard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Assistant:
    monkeypatch.setenv(KEY_ENV, qwen.api_key)
    policy = Policy.parse(POLICY)
    remote = edgekit.remote(qwen.base_url, qwen.model_id, api_key_env=KEY_ENV, timeout=120)
    router = Router(
        policy,
        local=[tiny],
        remote=remote,
        traces=TraceStore(tmp_path / "traces.jsonl"),
        ledger=BudgetLedger(policy.budget, tmp_path / "budget.json"),
    )
    return Assistant(router, guard=guard)


def test_an_escalated_request_carries_placeholders_and_the_user_reads_their_value(
    tiny: edgekit.Model, qwen: LlamaServer, guard: Guard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = assistant_for(tiny, qwen, guard, tmp_path, monkeypatch)
    prompt = (
        f"Write a one-line e-mail greeting to {EMAIL} that asks about the dosage on their prescription "
        f"label. Start with: To {EMAIL}:"
    )
    answer = assistant.chat(prompt)
    assert not isinstance(answer, edgekit.AnswerStream)
    assert answer.route == "remote:remote" and answer.escalation_reason
    log = qwen.log.read_text(errors="replace")
    assert "[EMAIL_1]" in log  # the remote got the request, with the placeholder
    assert EMAIL not in log  # and never the address
    assert EMAIL not in (tmp_path / "traces.jsonl").read_text()
    if "[EMAIL_1]" in answer.completion.text:  # the remote wrote the placeholder: the user reads the value
        assert EMAIL in answer.text and "[EMAIL_1]" not in answer.text
        assert answer.privacy.restored == ("[EMAIL_1]",)
    else:
        assert answer.privacy.missing == ("[EMAIL_1]",)
    assert any(f.category == "pii" and f.action == "redact" for f in answer.findings)


def test_a_session_escalates_on_turn_two_only(
    tiny: edgekit.Model, qwen: LlamaServer, guard: Guard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ChatSession(assistant_for(tiny, qwen, guard, tmp_path, monkeypatch))
    first = session.ask("Which city is the capital of France?")
    assert first.route == "local:tiny" and first.text.strip()
    before = qwen.log.read_text(errors="replace").count("request body:")
    second = session.ask("What is the usual adult dosage of paracetamol? One sentence.")
    assert second.route == "remote:remote"
    assert second.escalation_reason and second.escalation_reason.startswith("gate keywords:domain")
    bodies = [line for line in qwen.log.read_text(errors="replace").splitlines() if "request body:" in line]
    assert len(bodies) == before + 1
    sent = json.loads(bodies[-1].split("request body: ", 1)[1])["messages"]
    assert [m["role"] for m in sent][-3:] == ["user", "assistant", "user"]  # turn 1 went along
    assert sent[-3]["content"] == "Which city is the capital of France?"


def test_complete_on_a_cascade_continues_on_its_first_local_tier_through_the_guard(
    tiny: edgekit.Model, tmp_path: Path
) -> None:
    router = Router(Policy.parse(POLICY), local=[tiny], traces=TraceStore(tmp_path / "traces.jsonl"))
    guard = Guard(SafetyPolicy.parse(BLOCK_SECRETS))
    assistant = Assistant(router, guard=guard)
    prompt = "The capital of France is"
    answer = assistant.complete(prompt, max_tokens=8, temperature=0)
    assert isinstance(answer, Answer) and answer.route == "local:tiny" and answer.text.strip()
    assert answer.completion.model == tiny.name  # the tier's model, not the cascade
    assert answer.completion.usage.prompt_tokens == tiny.complete(prompt, max_tokens=1).usage.prompt_tokens
    stream = assistant.complete(prompt, stream=True, max_tokens=8, temperature=0)
    assert isinstance(stream, edgekit.AnswerStream)
    assert "".join(c.text for c in stream) == answer.text  # greedy: both paths agree
    assert stream.answer is not None and stream.answer.route == "local:tiny"
    with pytest.raises(SafetyBlockedError):
        assistant.complete(f"My AWS key is {AWS_KEY} and the key is", max_tokens=4)
    redacted = assistant.complete(f"Reply to {EMAIL} and say", max_tokens=4, temperature=0)
    assert any(f.layer == "input" and f.category == "pii" for f in redacted.findings)
    assert assistant.chat("Hi", max_tokens=2).route  # the engine went back to the pool each time


@pytest.mark.slow
def test_a_two_step_tool_loop_with_the_openai_sdk_against_edgekit_serve(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    served = start_server(tmp_path / "serve.log", "--n-ctx", "2048")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": False,  # else the grammar lets the 135M model add keys forever
                },
            },
        }
    ]
    try:
        client = openai.OpenAI(base_url=served.base_url, api_key="unused", timeout=180)
        messages: list[dict[str, object]] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = client.chat.completions.create(
            model="any", messages=messages, tools=tools, tool_choice="required", max_tokens=256, temperature=0
        )
        call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
        city = json.loads(call.function.arguments)["city"]
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": city, "sky": "sunny"})},
        ]
        second = client.chat.completions.create(
            model="any", messages=messages, tools=tools, max_tokens=256, temperature=0
        )
        choice = second.choices[0]
        assert choice.finish_reason in ("stop", "tool_calls", "length")
        assert choice.message.content or choice.message.tool_calls
    finally:
        assert stop(served.proc) == 0, served.diagnose()


def test_serve_with_a_cascade_and_no_remote_warns_at_start(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {**os.environ, "EDGEKIT_THREADS": "1", "EDGEKIT_REMOTE_URL": ""}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "serve", "--cascade", "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 180
        while "/v1" not in log.read_text(errors="replace") and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        text = log.read_text(errors="replace")
        assert "warning: no remote tier is configured" in text and "EDGEKIT_REMOTE_URL" in text, text
        assert text.index("warning: no remote") < text.index("/v1")  # said once, before it listens
    finally:
        assert stop(proc) == 0, log.read_text(errors="replace")[-2000:]
