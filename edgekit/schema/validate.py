"""Validate finished output against a compiled schema (jsonschema, draft 2020-12, formats asserted)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from edgekit.errors import SchemaOutputError

if TYPE_CHECKING:
    from edgekit.schema.compile import CompiledSchema


@lru_cache(maxsize=64)
def _validator(text: str) -> Any:
    from jsonschema import Draft202012Validator

    # The draft's own checker: a bare FormatChecker() mixes every draft's, and its "time" is draft 3's
    # (no offset allowed), which refused valid RFC 3339 times such as 18:30:00Z.
    return Draft202012Validator(json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(compiled: CompiledSchema, text: str) -> tuple[Any, list[str]]:
    """(parsed value or None, list of one-line problems; empty when the text is valid)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as bad:
        return None, [f"not valid JSON: {bad.msg} at character {bad.pos}"]
    errors = sorted(_validator(compiled.text).iter_errors(value), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors[:5]:
        where = "".join(f"/{p}" for p in err.absolute_path) or "/"
        out.append(f"at {where}: {err.message[:200]}")
    return value, out


def validate_text(compiled: CompiledSchema, text: str) -> Any:
    value, found = problems(compiled, text)
    if found:
        raise SchemaOutputError(f"output does not match the schema {compiled.name}: {found[0]}", text=text)
    return value
