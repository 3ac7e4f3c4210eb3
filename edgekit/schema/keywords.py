"""Which JSON Schema (draft 2020-12) keywords the token grammar enforces, and where a schema uses each.

Three kinds of keyword: ``GRAMMAR`` ones are enforced while decoding (the conformance test in
tests/schema checks every one against the official test suite); ``AFTER`` ones the grammar cannot
express, so they are checked only by validating the finished output; ``ANNOTATIONS`` constrain nothing.
A keyword outside all three is unknown to draft 2020-12 and ignored, as the specification says, and
reported as such.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

GRAMMAR = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
        "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "anyOf", "allOf", "$ref", "$defs", "definitions", "format",
        "multipleOf", "minProperties", "maxProperties", "patternProperties",
    }
)  # fmt: skip
AFTER = frozenset(
    {
        "oneOf", "not", "if", "then", "else", "uniqueItems", "contains", "minContains", "maxContains",
        "dependentRequired", "dependentSchemas", "unevaluatedItems", "unevaluatedProperties",
        "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "propertyNames",
    }
)  # fmt: skip
ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$comment", "$anchor", "$vocabulary", "title", "description", "default", "examples",
        "deprecated", "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
    }
)  # fmt: skip

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = (
    "items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema",
)  # fmt: skip
_SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")

Kind = Literal["grammar", "after", "annotation", "unknown"]


@dataclass(frozen=True)
class KeywordUse:
    """One keyword at one place in a schema; ``pointer`` is the JSON pointer of the keyword itself."""

    keyword: str
    pointer: str
    kind: Kind

    def __str__(self) -> str:
        return printable(f"{self.keyword} at {self.pointer or '/'}")


def printable(text: str) -> str:
    """One line of text whatever the schema's property names hold (newlines, control characters)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def kind_of(keyword: str) -> Kind:
    if keyword in GRAMMAR:
        return "grammar"
    if keyword in AFTER:
        return "after"
    return "annotation" if keyword in ANNOTATIONS else "unknown"


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def keyword_uses(schema: Any, pointer: str = "") -> Iterator[KeywordUse]:
    """Every keyword of ``schema`` and its subschemas, depth first, with its JSON pointer."""
    stack: list[tuple[Any, str]] = [(schema, pointer)]
    while stack:
        node, ptr = stack.pop()
        if not isinstance(node, Mapping):
            continue  # boolean schemas (and junk the metaschema check has already refused)
        for key, value in node.items():
            here = f"{ptr}/{escape_pointer(str(key))}"
            kind = kind_of(str(key))
            if key == "$ref" and not str(value).startswith("#"):
                kind = "after"  # a reference outside this document: the grammar cannot follow it
            yield KeywordUse(str(key), here, kind)
            if key in _SCHEMA_MAPS and isinstance(value, Mapping):
                stack.extend((sub, f"{here}/{escape_pointer(str(name))}") for name, sub in value.items())
            elif key in _SCHEMA_ONE:
                stack.append((value, here))
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                stack.extend((sub, f"{here}/{i}") for i, sub in enumerate(value))
