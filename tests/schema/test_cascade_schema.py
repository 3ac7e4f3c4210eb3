"""The cascade with a schema: a local answer that fails validation escalates, and an invalid answer is
never returned. Models are scripted fakes (the seam); validation is the real one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekit.errors import SchemaOutputError
from edgekit.runtime.types import ChatMessage, Completion
from edgekit.schema import compile_schema

from ..cascade.fakes import FakeModel
from ..cascade.test_router import make

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass
class Validating(FakeModel):
    """A scripted model whose answers go through edgekit's real schema validation, as Model.chat does."""

    def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
        out = super().chat(msgs, **params)
        if params.get("schema") is not None:
            compile_schema(params["schema"]).validate(out.text)
        return out


def test_schema_failure_on_the_local_tiers_escalates_to_the_remote(tmp_path: Path) -> None:
    tiny, small = Validating("Paris."), Validating("{}")
    remote = Validating('{"city": "Paris"}', name="big")
    result = make(tmp_path, tiny, small, remote).route("Capital of France?", schema=SCHEMA)
    assert result.route == "remote:remote"
    assert [r.split(":")[0] for r in result.rejections] == ["tiny", "small"]
    assert "schema" in result.rejections[0]


def test_valid_local_json_is_accepted_and_the_request_is_typed_json(tmp_path: Path) -> None:
    tiny = Validating('{"city": "Paris"}')
    router = make(tmp_path, tiny, Validating(), Validating(name="big"))
    result = router.route("Capital of France?", schema=SCHEMA)
    assert result.route == "local:tiny"
    assert router.features([{"role": "user", "content": "x"}], 8, "json").output_type == "json"


def test_no_tier_with_valid_json_is_an_error_not_a_degraded_answer(tmp_path: Path) -> None:
    router = make(tmp_path, Validating("nope"), Validating("[]"), Validating("still not json", name="big"))
    with pytest.raises(SchemaOutputError, match="no tier produced output matching the schema"):
        router.route("Capital of France?", schema=SCHEMA)
