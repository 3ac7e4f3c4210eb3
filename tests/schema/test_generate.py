"""Structured output on the real default model (llama.cpp, constrained) and a real remote endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

import edgekit
from edgekit.errors import BackendError, SchemaOutputError
from edgekit.runtime.remote import RemoteBackend
from edgekit.runtime.types import ChatMessage, GenerationParams, ResponseFormat
from edgekit.schema import Tool, compile_schema, generate_json, run_tool

from ..servers import LlamaServer
from ..servers import llama_server as start_llama_server

pytestmark = pytest.mark.model

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "languages": {"type": "array", "items": {"enum": ["en", "fr", "de", "ja"]}, "maxItems": 3},
    },
    "required": ["name", "age", "languages"],
    "additionalProperties": False,
}


def test_constrained_output_is_valid_json_for_the_schema(default_model: edgekit.Model) -> None:
    for seed in range(2):
        result = default_model.generate_json("Describe a person.", PERSON, seed=seed, max_tokens=80)
        assert result.method == "grammar"
        assert result.attempts == 1  # the grammar makes the first reply valid
        assert json.loads(result.text) == result.value
        assert set(result.value) == {"name", "age", "languages"}
        assert 0 <= result.value["age"] <= 120


def test_chat_with_a_pydantic_schema_and_streaming(default_model: edgekit.Model) -> None:
    class Answer(BaseModel):
        model_config = ConfigDict(extra="forbid")  # closed objects: a small model cannot add keys forever
        city: str = Field(max_length=30)
        country: str = Field(max_length=30)

    completion = default_model.chat("Where is the Eiffel tower?", schema=Answer, seed=1, max_tokens=60)
    Answer.model_validate_json(completion.text)
    chunks = list(
        default_model.chat("Where is the Colosseum?", schema=Answer, stream=True, seed=2, max_tokens=60)
    )
    assert chunks[-1].finish_reason == "stop"
    Answer.model_validate_json("".join(c.text for c in chunks))


def test_recursive_schema_generates_a_valid_tree(default_model: edgekit.Model) -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 12},
                    "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["label", "children"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    compiled = compile_schema(tree)
    try:
        result = default_model.generate_json(
            "A tiny family tree.", compiled, seed=3, max_tokens=120, repairs=0
        )
    except SchemaOutputError as e:  # a recursive value may nest past max_tokens: then it fails clearly
        assert "ran out of tokens" in e.message
        with pytest.raises(SchemaOutputError):
            compiled.validate(e.text)  # the partial text is not passed off as a value
    else:
        assert compiled.validate(result.text) == result.value


def test_unsatisfiable_within_max_tokens_is_a_clear_failure_not_a_truncated_object(
    default_model: edgekit.Model,
) -> None:
    schema = {
        "type": "object",
        "properties": {"essay": {"type": "string", "minLength": 400}},
        "required": ["essay"],
    }
    with pytest.raises(SchemaOutputError, match="ran out of tokens") as err:
        default_model.generate_json("Write an essay.", schema, max_tokens=20, seed=0, repairs=1)
    assert err.value.attempts == 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.value.text)  # what was produced is kept for diagnosis, never returned as a value


def test_adversarial_unicode_in_strings_stays_valid_json(default_model: edgekit.Model) -> None:
    schema = {
        "type": "object",
        "properties": {"echo": {"type": "string", "maxLength": 40}},
        "required": ["echo"],
    }
    prompt = (
        'Repeat exactly: "\u202ereversed\u202c \u200bzero\u200b \ud83d\ude00 \\" } ] \x00 \u0007 e\u0301"'
    )
    prompt = prompt.encode("utf-16", "surrogatepass").decode("utf-16")
    for seed in range(3):
        value = default_model.generate_json(prompt, schema, seed=seed, max_tokens=60, temperature=1.0).value
        assert isinstance(value["echo"], str)


def test_keywords_left_to_validation_are_enforced_by_repair_or_failure(default_model: edgekit.Model) -> None:
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3}, "minItems": 3,
              "maxItems": 3, "uniqueItems": True}  # fmt: skip
    compiled = compile_schema(schema)
    assert [u.keyword for u in compiled.validated_after] == ["uniqueItems"]
    params = GenerationParams(max_tokens=20, temperature=1.0, seed=5)
    for seed in range(3):
        try:
            msgs: list[ChatMessage] = [{"role": "user", "content": "Three numbers."}]
            result = generate_json(
                default_model.backend,
                msgs,
                compiled,
                GenerationParams(max_tokens=20, temperature=1.0, seed=seed),
            )
        except SchemaOutputError as e:
            assert "non-unique" in e.message
        else:
            assert len(set(result.value)) == 3
    assert params.response_format is None  # the caller's params are never changed


def test_tool_call_is_constrained_validated_and_guarded(default_model: edgekit.Model) -> None:
    tools = [
        Tool("get_weather", {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                             "required": ["city"], "additionalProperties": False}, "Weather for a city"),
        {"type": "function", "function": {"name": "send_email", "description": "Send an email",
         "parameters": {"type": "object", "properties": {"to": {"type": "string", "maxLength": 40},
                        "body": {"type": "string", "maxLength": 60}}, "required": ["to", "body"]}}},
    ]  # fmt: skip
    call = default_model.call_tool("What is the weather in Paris?", tools, seed=0, max_tokens=60)
    assert call.name in {"get_weather", "send_email"}
    assert not call.blocked
    ran = run_tool(
        call, {"get_weather": lambda city: f"sunny in {city}", "send_email": lambda to, body: "sent"}
    )
    assert isinstance(ran, str)


def test_guard_blocks_secret_tool_arguments_before_anything_runs(default_model: edgekit.Model) -> None:
    from edgekit.errors import InputError

    guard = edgekit.Guard()
    secret = "key sk-proj-" + "A1b2C3d4" * 6
    args = {"type": "object", "properties": {"note": {"const": secret}}, "required": ["note"]}
    tool = Tool("store", {**args, "additionalProperties": False})
    call = default_model.call_tool("Store the note.", [tool], guard=guard, seed=0, max_tokens=120, repairs=0)
    ran: list[str] = []
    if call.blocked:
        with pytest.raises(InputError, match="blocked"):
            run_tool(call, {"store": lambda note: ran.append(note)})
        assert ran == []
    else:  # a redacting policy: the secret never reaches the tool
        assert "A1b2C3d4" not in json.dumps(call.arguments)
    assert call.reasons


@pytest.fixture(scope="module")
def server(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    started = time.monotonic()
    with start_llama_server(default_model_path, tmp_path_factory.mktemp("schema_server")) as s:
        assert time.monotonic() - started >= 0
        yield s


@pytest.mark.slow
def test_remote_asks_for_response_format_and_validates(
    server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_TEST_SCHEMA_KEY", server.api_key)
    with RemoteBackend(
        server.base_url, server.model_id, api_key_env="EDGEKIT_TEST_SCHEMA_KEY", timeout=120
    ) as b:
        model = edgekit.Model(b, name="remote")
        result = model.generate_json("Describe a person.", PERSON, seed=0, max_tokens=120)
        assert result.method == "response_format"
        assert set(result.value) >= {"name", "age", "languages"}
        weather = {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
        }
        call = model.call_tool(
            "Weather in Oslo?", [Tool("get_weather", {**weather, "additionalProperties": False})]
        )
        assert call.name == "get_weather" and isinstance(call.arguments["city"], str)
        with pytest.raises(SchemaOutputError, match=r"ran out of tokens|not valid JSON"):
            model.generate_json("Describe a person.", PERSON, seed=0, max_tokens=3, repairs=1)


def test_a_bare_json_object_schema_is_asked_for_not_shown() -> None:
    from edgekit.schema import compile_schema
    from edgekit.schema.generate import instruction

    bare = instruction(compile_schema({"type": "object"}, name="json_object"))
    assert "a JSON object" in bare and '"type"' not in bare  # a small model copies a schema it is shown
    full = compile_schema({"type": "object", "properties": {"a": {"type": "integer"}}})
    assert full.text in instruction(full)


class OnlyDigits:
    """A token constraint that is not a grammar: the backend knows only the protocol."""

    def __init__(self, backend: object) -> None:
        pieces = [backend.llm.detokenize([t]) for t in range(backend.n_vocab)]  # type: ignore[attr-defined]
        self.allowed = np.array([p.isdigit() for p in pieces])
        self.seen: list[int] = []

    def apply(self, logits: np.ndarray) -> np.ndarray:
        logits[~self.allowed[: len(logits)]] = -np.inf
        return logits

    def consume(self, token: int) -> None:
        self.seen.append(token)

    @property
    def done(self) -> bool:
        return len(self.seen) >= 5


def test_a_local_backend_takes_any_token_constraint(default_model: edgekit.Model) -> None:
    made: list[OnlyDigits] = []

    def build(backend: object) -> OnlyDigits:
        made.append(OnlyDigits(backend))
        return made[-1]

    fmt = ResponseFormat(name="digits", schema="{}", grammar="", constraint=build)
    msgs: list[ChatMessage] = [{"role": "user", "content": "Say hello."}]
    out = default_model.backend.chat(msgs, GenerationParams(max_tokens=20, response_format=fmt))
    assert len(made) == 1 and len(made[0].seen) == 5  # built once for the generation, done after 5
    assert out.finish_reason == "stop" and out.text.isdigit()


def test_a_response_format_without_a_constraint_is_refused_locally(default_model: edgekit.Model) -> None:
    fmt = ResponseFormat(name="bare", schema="{}", grammar="start: /x/")
    msgs: list[ChatMessage] = [{"role": "user", "content": "Say hello."}]
    with pytest.raises(BackendError, match="no token constraint"):
        default_model.backend.chat(msgs, GenerationParams(max_tokens=5, response_format=fmt))
