"""/v1/embeddings and /v1/completions as users reach them: the official ``openai`` SDK against one real
``edgekit serve`` process on loopback (the default model, an API key, a safety policy that blocks
credentials), with the on-device sentence encoder loaded by the first embeddings request."""

from __future__ import annotations

import base64
import json
import re
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .test_serve_real import ENCODER, MODEL, Served, start_server, stop

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.model

AWS_KEY = "AKIAQ3EGRX7JMVXW4B2N"
POLICY = '[actions]\nsecrets = "block"\n[classifier]\nenabled = false\n[language]\nsupported = ["en"]\n'
TEXTS = [
    "The cat sleeps on the warm windowsill.",
    "A kitten is napping in the sun by the window.",
    "Quarterly tax filings are due at the end of March.",
]


@pytest.fixture(scope="module")
def served(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("edgekit_serve_sdk")
    (folder / "safety.toml").write_text(POLICY)
    key = "sk-edgekit-" + secrets.token_hex(12)
    args = ("--n-ctx", "1024", "--safety-policy", str(folder / "safety.toml"), "--log-level", "info")
    server = start_server(folder / "server.log", *args, api_key=key)
    try:
        yield server
    finally:
        assert stop(server.proc) == 0, server.diagnose()
    assert "Traceback" not in server.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def client(served: Served) -> Any:
    return openai.OpenAI(base_url=served.base_url, api_key=served.api_key, timeout=120, max_retries=0)


def test_the_models_list_names_the_chat_and_the_embedding_model(client: Any) -> None:
    assert [m.id for m in client.models.list().data] == [MODEL, ENCODER]


def test_embeddings_are_unit_vectors_that_place_similar_texts_closer(client: Any, served: Served) -> None:
    resp = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)  # the SDK asks for base64
    assert resp.model == ENCODER and resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in resp.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cats, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert cats > unrelated + 0.05, (cats, unrelated)
    assert resp.usage.prompt_tokens == resp.usage.total_tokens > len(TEXTS) * 5
    floats = client.embeddings.create(model=ENCODER, input=TEXTS, encoding_format="float")
    assert [d.embedding for d in floats.data] == [d.embedding for d in resp.data]
    raw = httpx.post(
        served.base_url + "/embeddings",
        headers=served.headers(),
        json={"input": TEXTS[0], "encoding_format": "base64"},
        timeout=60,
    ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert decoded.tolist() == floats.data[0].embedding
    logged = served.log.read_text(errors="replace")
    assert re.search(
        rf"embeddings: 3 input\(s\), {resp.usage.prompt_tokens} tokens in \d+ ms, model {ENCODER}", logged
    )
    assert TEXTS[0] not in logged


def test_a_completion_whole_and_streamed(client: Any, served: Served) -> None:
    prompt = "The three primary colours are"
    whole = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, temperature=0, seed=1)
    assert whole.object == "text_completion" and whole.model == MODEL and whole.id.startswith("cmpl-")
    choice = whole.choices[0]
    assert choice.text.strip() and choice.finish_reason in ("stop", "length")
    usage = whole.usage
    assert 0 < usage.completion_tokens <= 12 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt=prompt,
            max_tokens=12,
            temperature=0,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].object == "text_completion"
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == choice.text  # greedy: the stream says the same
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == usage
    logged = served.log.read_text(errors="replace")
    assert re.search(rf"completions \w+: \d+\+\d+ tokens in \d+ ms, route local:{MODEL}", logged)
    assert re.search(rf"completions \(stream\) \w+: \d+\+\d+ tokens in \d+ ms, route local:{MODEL}", logged)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        ("embeddings", "384"),
        ("token_ids", "token ids"),
        ("several_choices", "n > 1"),
        ("prompt_ids", "token ids"),
    ],
)
def test_a_bad_request_is_a_400_with_a_message(client: Any, call: str, needle: str) -> None:
    requests = {
        "embeddings": lambda: client.embeddings.create(model=ENCODER, input="hello", dimensions=256),
        "token_ids": lambda: client.embeddings.create(model=ENCODER, input=[[15339, 1917]]),
        "several_choices": lambda: client.completions.create(model=MODEL, prompt="Hi", n=2),
        "prompt_ids": lambda: client.completions.create(model=MODEL, prompt=[15339, 1917]),
    }
    with pytest.raises(openai.BadRequestError) as info:
        requests[call]()
    assert info.value.status_code == 400
    error = info.value.body
    assert isinstance(error, dict) and needle in error["message"] and "Traceback" not in error["message"]


def test_a_prompt_the_policy_blocks_gets_the_chat_refusal(client: Any, served: Served) -> None:
    prompt = f"My AWS key is {AWS_KEY} and the key"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=prompt, max_tokens=4)
    assert "refused by the safety policy" in str(info.value)
    with httpx.Client(base_url=served.base_url, headers=served.headers(), timeout=60) as http:
        text = http.post("/completions", json={"prompt": prompt})
        chat = http.post("/chat/completions", json={"messages": [{"role": "user", "content": prompt}]})
    assert text.status_code == chat.status_code == 400 and text.json() == chat.json()
    assert AWS_KEY not in served.log.read_text(errors="replace")


def test_the_readme_examples_work(served: Served) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Serving", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"curl -s http://127\.0\.0\.1:8000/v1/completions .*-d '(\{.*\})'", section)
    assert found, "the Serving section shows a text completion"
    resp = httpx.post(served.base_url + "/completions", headers=served.headers(), json=json.loads(found[1]))
    assert resp.status_code == 200 and resp.json()["choices"][0]["text"].strip()
    code = re.search(r"```python\n( *from openai import OpenAI\n.*?) *```", section, re.DOTALL)
    assert code, "the Serving section shows the embeddings through the SDK"
    local = (
        textwrap.dedent(code[1])
        .replace("http://127.0.0.1:8000/v1", served.base_url)
        .replace('"sk-local-example"', repr(served.api_key))
    )
    scope: dict[str, Any] = {}
    exec(compile(local, "README.md", "exec"), scope)
    assert [len(v) for v in scope["vectors"]] == [384, 384]
