"""Compile a JSON schema (dict, JSON text, file, or pydantic model) into a token grammar plus a validator.

The grammar comes from llguidance's JSON-schema compiler (masks in tens of microseconds per token, so
constrained decoding runs near free-generation speed; see tools/bench_schema.py). Every keyword the
grammar cannot express is listed in ``CompiledSchema.validated_after`` before generation starts, and
strict mode refuses such schemas with the keyword and its JSON pointer.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgekit.errors import SchemaError
from edgekit.runtime.types import ResponseFormat
from edgekit.schema.keywords import KeywordUse, escape_pointer, keyword_uses, printable
from edgekit.schema.matcher import grammar_constraint, limits

MAX_SCHEMA_CHARS = 200_000
"""Larger schemas are refused before compiling: compile time and grammar size grow with the schema."""
MAX_KEYWORDS = 10_000

# Decoding emits compact JSON: no whitespace between tokens, so a small model cannot pad with blank lines.
_COMPILE_OPTIONS = {"whitespace_flexible": False, "lenient": True}


@dataclass(frozen=True)
class CompiledSchema:
    """A schema ready for decoding: the grammar, a validator, and what the grammar does not enforce."""

    name: str
    text: str
    """The schema as canonical JSON text."""
    grammar: str
    enforced: tuple[KeywordUse, ...]
    validated_after: tuple[KeywordUse, ...]
    """Keywords checked only by validating the finished output (the grammar cannot express them)."""
    ignored: tuple[KeywordUse, ...]
    """Keywords unknown to draft 2020-12, which validators ignore."""
    schema: Any = field(compare=False, repr=False)

    @property
    def exact(self) -> bool:
        """True when the grammar alone guarantees valid output (nothing is left for validation)."""
        return not self.validated_after

    def response_format(self) -> ResponseFormat:
        return ResponseFormat(
            name=self.name,
            schema=self.text,
            grammar=self.grammar,
            constraint=grammar_constraint(self.grammar),
        )

    def validate(self, text: str) -> Any:
        """Parse and validate ``text``; raises SchemaOutputError saying what is wrong."""
        from edgekit.schema.validate import validate_text

        return validate_text(self, text)

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enforced_by_grammar": sorted({u.keyword for u in self.enforced}),
            "validated_after_generation": [str(u) for u in self.validated_after],
            "ignored_unknown": [str(u) for u in self.ignored],
        }


def compile_schema(schema: Any, *, strict: bool = False, name: str | None = None) -> CompiledSchema:
    """Check ``schema`` against the draft 2020-12 metaschema and compile its grammar.

    ``schema`` is a dict, JSON text, a path to a JSON file, a pydantic model class, or a CompiledSchema.
    Raises SchemaError for malformed, too large, or unsatisfiable schemas, and in strict mode for any
    keyword the grammar cannot enforce.
    """
    if isinstance(schema, CompiledSchema):
        if strict and schema.validated_after:
            raise _not_enforceable(schema.validated_after[0])
        return schema
    value, default_name = _load(schema)
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":")
        )  # key order kept: it orders output
        return _compile_text(text, strict, name or default_name)
    except RecursionError:
        raise SchemaError("the schema is nested too deeply", "Flatten it with $defs and $ref.") from None
    except (TypeError, ValueError) as e:  # a dict holding values JSON cannot represent (sets, NaN, objects)
        raise SchemaError(f"the schema is not JSON: {_first_line(str(e))}") from None


def load_schema_file(path: Path) -> Any:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path}: cannot read the schema file: {e}", "Pass a UTF-8 JSON file.") from None
    return _parse(raw, str(path))


def _load(schema: Any) -> tuple[Any, str]:
    if isinstance(schema, type):
        dump = getattr(schema, "model_json_schema", None)
        if dump is None:
            raise SchemaError(
                f"{schema.__name__} is not a pydantic model", "Pass a dict or a BaseModel class."
            )
        return dump(), schema.__name__
    if isinstance(schema, Path):
        return load_schema_file(schema), schema.stem
    if isinstance(schema, str):
        return _parse(schema, "the schema"), "response"
    if isinstance(schema, (Mapping, bool)):
        return schema, str(schema.get("title", "response")) if isinstance(schema, Mapping) else "response"
    raise SchemaError(
        f"a schema must be a dict, JSON text, a path or a pydantic model, not {type(schema).__name__}"
    )


def _parse(raw: str, where: str) -> Any:
    if len(raw) > MAX_SCHEMA_CHARS:
        raise _too_large(len(raw))
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{where} is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def _too_large(n: int, what: str = "characters") -> SchemaError:
    return SchemaError(
        f"the schema is too large ({n} {what}; the limit is "
        f"{MAX_SCHEMA_CHARS if what == 'characters' else MAX_KEYWORDS})",
        "Split it, or move repeated parts into $defs and refer to them with $ref.",
    )


def _not_enforceable(use: KeywordUse) -> SchemaError:
    return SchemaError(
        printable(f"strict mode: keyword '{use.keyword}' at {use.pointer} cannot be enforced while decoding"),
        "Drop the keyword, or leave strict mode to have it checked by validating the output.",
        pointer=use.pointer,
        keyword=use.keyword,
    )


@lru_cache(maxsize=64)
def _compile_text(text: str, strict: bool, name: str) -> CompiledSchema:
    if len(text) > MAX_SCHEMA_CHARS:
        raise _too_large(len(text))
    value = json.loads(text)
    _check_metaschema(value)
    uses = list(keyword_uses(value))
    if len(uses) > MAX_KEYWORDS:
        raise _too_large(len(uses), "keywords")
    after = tuple(u for u in uses if u.kind == "after")
    if strict and after:
        raise _not_enforceable(after[0])
    grammar = _grammar(value)
    return CompiledSchema(
        name=_safe_name(name),
        text=text,
        grammar=grammar,
        enforced=tuple(u for u in uses if u.kind == "grammar"),
        validated_after=after,
        ignored=tuple(u for u in uses if u.kind == "unknown"),
        schema=value,
    )


def _check_metaschema(value: Any) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as JsSchemaError

    if not isinstance(value, (Mapping, bool)):
        raise SchemaError(f"a schema must be a JSON object or a boolean, not {type(value).__name__}")
    try:
        with warnings.catch_warnings():
            # Python's re warns (FutureWarning) about patterns like "[[" that it still compiles; the
            # metaschema's "regex" format check compiles every pattern, and a library must not print.
            warnings.simplefilter("ignore", FutureWarning)
            Draft202012Validator.check_schema(value)
    except JsSchemaError as e:
        pointer = "".join(f"/{escape_pointer(str(p))}" for p in e.path) or "/"
        raise SchemaError(
            printable(f"invalid schema at {pointer}: {e.message}"[:500]),
            pointer=pointer,
            keyword=str(e.validator),
        ) from None
    except RecursionError:
        raise SchemaError("the schema is nested too deeply", "Flatten it with $defs and $ref.") from None


_COUNTS = frozenset(
    {
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "minContains",
        "maxContains",
    }
)


def _integral_counts(node: Any) -> Any:
    """2.0 is a valid maxItems in draft 2020-12; the grammar compiler wants integers."""
    if isinstance(node, Mapping):
        return {
            k: int(v) if k in _COUNTS and isinstance(v, float) and v.is_integer() else _integral_counts(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_integral_counts(v) for v in node]
    return node


def _grammar(value: Any) -> str:
    from llguidance import LLMatcher

    if value is True:
        value = {}
    elif value is False:
        raise SchemaError(
            "the schema is 'false': no value can satisfy it", "Use a schema that allows something."
        )
    try:
        grammar = LLMatcher.grammar_from_json_schema(_integral_counts(value), defaults=_COMPILE_OPTIONS)  # type: ignore[arg-type]
    except (ValueError, RecursionError) as e:
        raise SchemaError(f"the schema cannot be compiled: {_first_line(str(e))}") from None
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, None, limits=limits())
    if is_error:
        detail = messages[0] if messages else "unknown error"
        raise SchemaError(
            f"the schema cannot be compiled to a grammar: {_first_line(detail)}",
            "Check for contradictions (for example minimum above maximum, or allOf of different types).",
        )
    return grammar


def _first_line(text: str) -> str:
    return printable(text.strip().splitlines()[0][:300]) if text.strip() else "no detail"


def _safe_name(name: str) -> str:
    """OpenAI's response_format name: letters, digits, '_' and '-', at most 64."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "response"
