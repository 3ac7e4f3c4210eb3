"""/v1/completions and /v1/embeddings around the seam: request mapping, OpenAI shapes, refusals by name,
the guard on both sides of a text completion, and an embedding model that cannot be loaded. The responder
is scripted; the guard, the lock and (where marked) the sentence encoder are real."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from edgekit.assistant import Assistant
from edgekit.safety.guard import Guard
from edgekit.safety.policy import SafetyPolicy
from edgekit.serve import ServeOptions, create_app

from .fakes import FakeCompleter, FakeResponder
from .test_app import assert_error, sse_events

TEXT = "/v1/completions"
EMBED = "/v1/embeddings"
E5 = "multilingual-e5-small-int8"
AWS_KEY = "AKIAQ3EGRX7JMVXW4B2N"
HI = {"messages": [{"role": "user", "content": "Hi"}]}
GUARD = '[actions]\nsecrets = "block"\n[classifier]\nenabled = false\n[language]\nsupported = ["en"]\n'


@pytest.fixture
def fake() -> FakeCompleter:
    return FakeCompleter(reply="one two three four five six seven eight nine ten " * 3)


@pytest.fixture
def client(fake: FakeCompleter) -> Iterator[TestClient]:
    with TestClient(create_app(fake)) as c:
        yield c


# --- text completions ------------------------------------------------------------------------------


def test_a_completion_in_openai_shape_with_openai_defaults(client: TestClient, fake: FakeCompleter) -> None:
    resp = client.post(TEXT, json={"model": "gpt-3.5-turbo-instruct", "prompt": "Count:", "user": "u1"})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["id"].startswith("cmpl-") and data["object"] == "text_completion"
    assert data["model"] == "fake-model" and isinstance(data["created"], int)
    words = fake.reply.split(" ")[:16]
    assert data["choices"] == [
        {"text": " ".join(words), "index": 0, "logprobs": None, "finish_reason": "length"}
    ]
    assert data["usage"] == {"prompt_tokens": 7, "completion_tokens": 16, "total_tokens": 23}
    call = fake.calls[-1]
    assert call["messages"] == [{"role": "user", "content": "Count:"}]
    assert (call["max_tokens"], call["temperature"], call["top_p"], call["seed"]) == (16, 0.7, 0.95, None)
    body = {"prompt": ["Go"], "max_tokens": 3, "temperature": 0, "top_p": 0.5, "seed": 4, "stop": "X"}
    assert client.post(TEXT, json=body).json()["choices"][0]["text"] == "one two three"
    call = fake.calls[-1]
    assert (call["max_tokens"], call["temperature"], call["top_p"], call["seed"], call["stop"]) == (
        3,
        0.0,
        0.5,
        4,
        ("X",),
    )


def test_a_streamed_completion_sends_text_completion_events_then_done(client: TestClient) -> None:
    body = {"prompt": "Count:", "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", TEXT, json=body) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.read().decode())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"text_completion"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("cmpl-")
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == "one two three four"
    assert chunks[-2]["choices"][0] == {"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_echo_puts_the_prompt_before_the_text(client: TestClient) -> None:
    body = {"prompt": "Count: ", "max_tokens": 2, "echo": True}
    assert client.post(TEXT, json=body).json()["choices"][0]["text"] == "Count: one two"
    with client.stream("POST", TEXT, json={**body, "stream": True}) as resp:
        events = sse_events(resp.read().decode())
    assert events[0]["choices"][0]["text"] == "Count: "
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == "Count: one two"


UNSUPPORTED = "unsupported_parameter"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "prompt", "invalid_value"),
        ({"prompt": "   "}, "prompt", "invalid_value"),
        ({"prompt": 5}, "prompt", "invalid_value"),
        ({"prompt": [1, 2, 3]}, "prompt", UNSUPPORTED),
        ({"prompt": [[1, 2], [3]]}, "prompt", UNSUPPORTED),
        ({"prompt": ["a", "b"]}, "prompt", UNSUPPORTED),
        ({"prompt": []}, "prompt", "invalid_type"),
        ({"prompt": "x", "suffix": "y"}, "suffix", UNSUPPORTED),
        ({"prompt": "x", "n": 2}, "n", UNSUPPORTED),
        ({"prompt": "x", "best_of": 3}, "best_of", UNSUPPORTED),
        ({"prompt": "x", "logprobs": 2}, "logprobs", UNSUPPORTED),
        ({"prompt": "x", "frequency_penalty": 0.5}, "frequency_penalty", UNSUPPORTED),
        ({"prompt": "x", "logit_bias": {"1": 3}}, "logit_bias", UNSUPPORTED),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"prompt": "x", "temperature": 3}, "temperature", "invalid_value"),
    ],
)
def test_a_bad_completion_request_is_a_400_naming_the_field(
    client: TestClient, fake: FakeCompleter, body: dict[str, object], param: str, code: str
) -> None:
    assert_error(client.post(TEXT, json=body), 400, param=param, code=code)
    assert fake.calls == []  # refused before admission


def test_neutral_values_of_unsupported_fields_are_accepted(client: TestClient) -> None:
    body = {"prompt": "x", "n": 1, "best_of": 1, "logprobs": None, "presence_penalty": 0, "suffix": ""}
    assert client.post(TEXT, json=body).status_code == 200


def test_a_responder_that_only_chats_says_so() -> None:
    with TestClient(create_app(FakeResponder())) as c:
        message = assert_error(c.post(TEXT, json={"prompt": "Once"}), 400)
        assert "cannot continue plain text" in message
        assert c.post("/v1/chat/completions", json=HI).is_success


def test_the_guard_screens_the_prompt_and_the_continuation() -> None:
    fake = FakeCompleter(reply="Write to jo.doe@example.com today")
    app = create_app(Assistant(fake, guard=Guard(SafetyPolicy.parse(GUARD))))
    with TestClient(app) as c:
        text = c.post(TEXT, json={"prompt": "Contact", "max_tokens": 9}).json()["choices"][0]["text"]
        assert "jo.doe@example.com" not in text and "REDACTED" in text  # the output layer
        with c.stream("POST", TEXT, json={"prompt": "Contact", "max_tokens": 9, "stream": True}) as resp:
            events = sse_events(resp.read().decode())
        streamed = "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"])
        assert "jo.doe@example.com" not in streamed and "REDACTED" in streamed
        calls = len(fake.calls)
        blocked = f"My AWS key is {AWS_KEY}"
        refused = c.post(TEXT, json={"prompt": blocked})
        as_chat = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": blocked}]})
        assert_error(refused, 400, code="invalid_value")
        assert refused.json() == as_chat.json()  # the refusal chat completions give for blocked input
        with c.stream("POST", TEXT, json={"prompt": blocked, "stream": True}) as resp:
            assert resp.status_code == 400 and resp.read()  # refused before the stream starts
        assert len(fake.calls) == calls  # the model never saw it


def test_one_info_line_per_completion(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgekit.serve"):
        client.post(TEXT, json={"prompt": "Count:", "max_tokens": 2})
        with client.stream("POST", TEXT, json={"prompt": "Count:", "max_tokens": 2, "stream": True}) as r:
            r.read()
    lines = [r.getMessage() for r in caplog.records if r.name == "edgekit.serve"]
    assert lines[0].startswith("completions length: 7+2 tokens in ") and "route local:fake-model" in lines[0]
    assert lines[1].startswith("completions (stream) length: 7+2 tokens in ")


# --- embeddings: refusals before the encoder loads -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "input", "invalid_value"),
        ({"input": []}, "input", "invalid_value"),
        ({"input": ""}, "input", "invalid_value"),
        ({"input": ["a", " "]}, "input[1]", "invalid_value"),
        ({"input": ["a", 3]}, "input[1]", "invalid_type"),
        ({"input": [1, 2, 3]}, "input", UNSUPPORTED),
        ({"input": [[1, 2], [3]]}, "input", UNSUPPORTED),
        ({"input": "a", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"input": "a", "dimensions": 0}, "dimensions", "invalid_value"),
        ({"input": ["a", "b", "c"]}, "input", "too_many_inputs"),
    ],
)
def test_a_bad_embeddings_request_is_a_400_naming_the_field(
    body: dict[str, object], param: str, code: str
) -> None:
    app = create_app(FakeResponder(), ServeOptions(max_embedding_inputs=2))
    with TestClient(app) as c:
        message = assert_error(c.post(EMBED, json=body), 400, param=param, code=code)
    if code == UNSUPPORTED:
        assert "check_embedding_ctx_length=False" in message  # LangChain sends token ids unless told


def test_an_embeddings_body_over_the_limit_is_413() -> None:
    with TestClient(create_app(FakeResponder(), ServeOptions(max_body_bytes=1000))) as c:
        assert_error(c.post(EMBED, json={"input": "x" * 2000}), 413, code="request_too_large")


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "no-such-encoder"])
def test_an_embedding_model_that_cannot_be_loaded_is_a_503_with_a_hint(name: str) -> None:
    with TestClient(create_app(FakeResponder(), ServeOptions(embedding_model=name))) as c:
        message = assert_error(c.post(EMBED, json={"input": "hello"}), 503, code="embeddings_unavailable")
        assert f"the embedding model {name} cannot be loaded" in message and "(hint: " in message
        assert c.get("/health").json()["active"] == 0  # the slot came back
        assert c.post("/v1/chat/completions", json=HI).is_success


def test_embeddings_off_is_a_404_and_unlisted() -> None:
    with TestClient(create_app(FakeResponder(), ServeOptions(embedding_model=None))) as c:
        assert_error(c.post(EMBED, json={"input": "hello"}), 404)
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["fake-model"]


def test_the_embedding_model_is_listed_and_found(client: TestClient) -> None:
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["fake-model", E5]
    assert client.get(f"/v1/models/{E5}").json() == {
        "id": E5,
        "object": "model",
        "created": client.get("/v1/models").json()["data"][0]["created"],
        "owned_by": "edgekit",
    }


# --- embeddings with the real encoder (loads in about a second) --------------------------------------


@pytest.fixture(scope="module")
def e5_client() -> Iterator[TestClient]:
    options = ServeOptions(max_embedding_tokens=60)
    with TestClient(create_app(FakeResponder(), options)) as c:
        yield c


@pytest.mark.model
def test_embeddings_in_openai_shape_as_floats_or_base64(e5_client: TestClient) -> None:
    texts = ["The cat sits on the mat.", "Le chat est assis sur le tapis."]
    data = e5_client.post(EMBED, json={"input": texts, "model": "text-embedding-3-small"}).json()
    assert data["object"] == "list" and data["model"] == E5
    assert [(d["object"], d["index"]) for d in data["data"]] == [("embedding", 0), ("embedding", 1)]
    vectors = np.array([d["embedding"] for d in data["data"]])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert data["usage"]["prompt_tokens"] == data["usage"]["total_tokens"] > 10
    packed = e5_client.post(EMBED, json={"input": texts, "encoding_format": "base64", "dimensions": 384})
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed.json()["data"]]
    assert np.array_equal(np.array(decoded, dtype=np.float64), vectors)
    single = e5_client.post(EMBED, json={"input": texts[0], "encoding_format": "float"}).json()
    assert single["data"][0]["embedding"] == data["data"][0]["embedding"]


@pytest.mark.model
def test_embedding_limits_that_need_the_encoder(e5_client: TestClient) -> None:
    message = assert_error(
        e5_client.post(EMBED, json={"input": "hi", "dimensions": 256}), 400, param="dimensions"
    )
    assert "384" in message
    long = "word " * 600
    assert_error(e5_client.post(EMBED, json={"input": ["hi", long]}), 400, param="input[1]")
    assert_error(e5_client.post(EMBED, json={"input": ["a short text"] * 8}), 400, code="too_many_tokens")
    assert e5_client.get("/health").json()["active"] == 0
