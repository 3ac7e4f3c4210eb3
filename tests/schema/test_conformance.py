"""The official JSON-Schema-Test-Suite (draft 2020-12, vendored under suite/ with its MIT license)
against the schema-to-grammar path, with the default model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgekit
from edgekit.schema.conformance import Coverage, run_suite
from edgekit.schema.keywords import AFTER, GRAMMAR

SUITE = Path(__file__).parent / "suite" / "draft2020-12"

# Valid instances the grammar refuses, each for a stated reason. The grammar emits one canonical form of
# a value, so these narrow what the model may write without ever letting an invalid value through.
INTEGRAL_FLOAT = "numbers with a zero fraction (1.0) are written as integers (1)"
KEY_ORDER = "object keys come in the schema's order"
FORMAT = "format is asserted (both by the grammar and by validation), not only an annotation"
NARROWER = {
    ("allOf", "allOf"): KEY_ORDER,
    ("allOf", "allOf with base schema"): KEY_ORDER,
    ("const", "const with object"): KEY_ORDER,
    ("const", "const with 0 does not match other zero-like types"): INTEGRAL_FLOAT,
    ("const", "const with 1 does not match true"): INTEGRAL_FLOAT,
    ("const", "const with -2.0 matches integer and float types"): INTEGRAL_FLOAT,
    ("const", "float and integers are equal up to 64-bit representation limits"): INTEGRAL_FLOAT,
    ("enum", "enum with 0 does not match false"): INTEGRAL_FLOAT,
    ("enum", "enum with [0] does not match [false]"): INTEGRAL_FLOAT,
    ("enum", "enum with 1 does not match true"): INTEGRAL_FLOAT,
    ("enum", "enum with [1] does not match [true]"): INTEGRAL_FLOAT,
    ("type", "integer type matches integers"): INTEGRAL_FLOAT,
    **{
        ("format", f"{name} format"): FORMAT
        for name in (
            "email",
            "ipv4",
            "ipv6",
            "hostname",
            "date",
            "date-time",
            "time",
            "uri",
            "uuid",
            "duration",
        )
    },
}


@pytest.fixture(scope="module")
def coverage(default_model: edgekit.Model) -> Coverage:
    tokenizer = default_model.backend.grammar_tokenizer()  # type: ignore[attr-defined]
    return run_suite(SUITE, tokenizer)


@pytest.mark.model
@pytest.mark.slow
def test_grammar_rejects_every_invalid_instance(coverage: Coverage) -> None:
    print("\n" + "\n".join(coverage.lines()))
    assert coverage.false_accepts == []
    assert coverage.instances["grammar"] > 500  # most of the suite is judged by the grammar itself


@pytest.mark.model
@pytest.mark.slow
def test_grammar_accepts_every_valid_instance_but_the_declared_canonical_forms(coverage: Coverage) -> None:
    refused = {(file, group) for file, group, _ in coverage.false_rejects}
    assert refused == set(NARROWER)


@pytest.mark.model
@pytest.mark.slow
def test_every_grammar_keyword_is_exercised_by_the_suite(coverage: Coverage) -> None:
    judged = {name for name, counts in coverage.per_file.items() if counts["grammar"]}
    files_for_keywords = {"prefixItems", "items", "properties", "required", "additionalProperties", "enum"}
    assert files_for_keywords <= judged
    assert not (GRAMMAR & AFTER)
    for keyword in ("not", "uniqueItems", "contains", "oneOf", "if-then-else"):
        assert coverage.per_file[keyword]["grammar"] == 0, keyword  # all of these go to validation


def test_vendored_suite_is_intact() -> None:
    assert (SUITE.parent / "LICENSE").read_text().startswith("Copyright (c) 2012 Julian Berman")
    groups = json.loads((SUITE / "type.json").read_text())
    assert any(g["description"] == "integer type matches integers" for g in groups)
