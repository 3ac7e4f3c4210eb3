"""Validate-and-repair: the loop's logic with a scripted backend (the seam), and the real ONNX backend,
which cannot constrain decoding and says so."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import edgekit
from edgekit.errors import RemoteRequestError, SchemaOutputError
from edgekit.runtime.base import BackendBase, Capabilities
from edgekit.runtime.types import ChatMessage, Chunk, GenerationParams, Usage
from edgekit.schema import compile_schema, generate_json

SCHEMA = compile_schema(
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
)


class Scripted(BackendBase):
    """Replies from a queue; records what each call was sent (the messages and the response_format)."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, replies: list[str | Exception], structured: str = "validate") -> None:
        self.replies = replies
        self.capabilities = Capabilities(structured=structured, local=structured != "response_format")
        self.sent: list[tuple[list[ChatMessage], GenerationParams]] = []

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        self.sent.append((list(messages), params))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return iter([Chunk(reply), Chunk("", finish_reason="stop", usage=Usage(5, 3))])


USER: list[ChatMessage] = [{"role": "user", "content": "A number."}]


def test_invalid_reply_is_repaired_with_the_validation_error() -> None:
    backend = Scripted(['{"n": 0}', "sure! here it is", '{"n": 4}'])
    result = generate_json(backend, USER, SCHEMA, GenerationParams())
    assert result.value == {"n": 4} and result.attempts == 3 and result.method == "validate"
    last_messages = backend.sent[-1][0]
    assert "0 is less than the minimum of 1" in last_messages[-3]["content"]
    assert "not valid JSON" in last_messages[-1]["content"]
    assert SCHEMA.text in backend.sent[0][0][0]["content"]  # the schema is in the prompt


def test_bounded_repairs_then_a_clear_error() -> None:
    backend = Scripted(['{"n": "x"}'] * 2)
    with pytest.raises(SchemaOutputError, match="after 2 attempts") as err:
        generate_json(backend, USER, SCHEMA, GenerationParams(), repairs=1)
    assert err.value.text == '{"n": "x"}' and backend.replies == []


def test_remote_that_refuses_response_format_is_asked_again_without_it() -> None:
    refused = RemoteRequestError("400: response_format json_schema is not supported", status=400)
    backend = Scripted([refused, refused, '{"n": 2}'], structured="response_format")
    result = generate_json(backend, USER, SCHEMA, GenerationParams())
    styles = [p.response_format.style if p.response_format else None for _, p in backend.sent]
    assert styles == ["json_schema", "json_object", None]
    assert result.value == {"n": 2} and result.method == "validate"


def test_other_remote_errors_are_not_swallowed() -> None:
    backend = Scripted([RemoteRequestError("400: bad model", status=400)], structured="response_format")
    with pytest.raises(RemoteRequestError):
        generate_json(backend, USER, SCHEMA, GenerationParams())


def test_onnx_backend_validates_and_never_returns_invalid_json(tmp_path: Path) -> None:
    from tests.runtime.onnx_fixture import build_tiny_lm

    with edgekit.load(build_tiny_lm(tmp_path / "tiny-onnx")) as model:
        assert model.backend.capabilities.structured == "validate"  # it cannot constrain decoding
        tiny = compile_schema({"type": "integer", "minimum": 10**9})  # the test model's context is 128
        with pytest.raises(SchemaOutputError) as err:  # a random tiny model does not write such a number
            model.generate_json("n", tiny, max_tokens=4, seed=0, repairs=0)
        assert err.value.attempts == 1
        with pytest.raises((json.JSONDecodeError, SchemaOutputError)):
            tiny.validate(err.value.text)
