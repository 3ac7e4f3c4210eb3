"""Schema compilation without a model: the keyword report, strict mode, and bad schemas."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from edgekit.errors import InputError, SchemaError, SchemaOutputError
from edgekit.schema import compile_schema, load_schema_file
from edgekit.schema.compile import MAX_SCHEMA_CHARS

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "uniqueItems": True}},
    "required": ["name"],
}


def test_report_lists_keywords_the_grammar_cannot_enforce_with_pointers() -> None:
    c = compile_schema(PERSON)
    assert [str(u) for u in c.validated_after] == ["uniqueItems at /properties/tags/uniqueItems"]
    assert {"type", "properties", "required"} <= {u.keyword for u in c.enforced}
    assert not c.exact
    assert c.report()["validated_after_generation"] == ["uniqueItems at /properties/tags/uniqueItems"]


def test_strict_mode_raises_with_keyword_and_pointer() -> None:
    with pytest.raises(SchemaError) as err:
        compile_schema(PERSON, strict=True)
    assert err.value.keyword == "uniqueItems"
    assert err.value.pointer == "/properties/tags/uniqueItems"
    assert isinstance(err.value, InputError)  # exit code 2 in the CLI


def test_unknown_keywords_are_reported_not_silently_dropped() -> None:
    c = compile_schema({"type": "string", "x-color": "red"})
    assert [u.keyword for u in c.ignored] == ["x-color"]
    assert c.exact


def test_refs_to_other_documents() -> None:
    # The metaschema ships with jsonschema: validation follows the reference, the grammar cannot.
    c = compile_schema({"$ref": "https://json-schema.org/draft/2020-12/schema"})
    assert [u.keyword for u in c.validated_after] == ["$ref"]
    with pytest.raises(SchemaError, match=r"example\.com"):  # nothing is fetched from the network
        compile_schema({"$ref": "https://example.com/other.json"})


def test_pydantic_model_becomes_a_schema() -> None:
    class City(BaseModel):
        name: str
        population: int

    c = compile_schema(City)
    assert c.name == "City"
    assert c.validate('{"name":"Oslo","population":700000}') == {"name": "Oslo", "population": 700000}
    with pytest.raises(SchemaOutputError, match="population"):
        c.validate('{"name":"Oslo","population":"many"}')


def test_key_order_is_kept_because_it_orders_the_output() -> None:
    c = compile_schema({"type": "object", "properties": {"z": {}, "a": {}}})
    assert c.text.index('"z"') < c.text.index('"a"')


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "strin"}, "invalid schema at /type"),
        ({"minLength": -1}, "invalid schema"),
        ({"type": "integer", "minimum": 5, "maximum": 1}, "cannot be compiled"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "cannot be compiled"),
        (False, "no value can satisfy it"),
        ([1, 2], "must be a dict"),
        ("[1, 2]", "must be a JSON object or a boolean"),
        ("{not json", "not JSON"),
    ],
)
def test_invalid_or_self_contradicting_schemas_are_one_line_errors(schema: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as err:
        compile_schema(schema)
    assert "\n" not in err.value.message


def test_recursive_schema_compiles() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    }
    c = compile_schema(tree)
    assert c.exact
    assert c.validate('{"v":1,"kids":[{"v":2,"kids":[]}]}')["kids"][0]["v"] == 2


def test_very_large_schema_is_refused_quickly_with_a_clear_limit() -> None:
    props = {f"field_{i}": {"type": "string", "description": "x" * 40} for i in range(5000)}
    started = time.monotonic()
    with pytest.raises(SchemaError, match="too large"):
        compile_schema({"type": "object", "properties": props})
    assert len(json.dumps(props)) > MAX_SCHEMA_CHARS
    assert time.monotonic() - started < 30  # refused before compiling (not a speed target)


def test_deeply_nested_or_non_json_schemas_are_schema_errors() -> None:
    deep: object = {"type": "string"}
    for _ in range(3000):
        deep = {"type": "array", "items": deep}
    with pytest.raises(SchemaError, match="nested too deeply"):
        compile_schema(deep)
    with pytest.raises(SchemaError, match="not JSON"):
        compile_schema({"enum": [{1, 2}]})


def test_schema_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": ', encoding="utf-8")
    with pytest.raises(SchemaError, match="not JSON"):
        load_schema_file(bad)


def test_output_validation_never_passes_truncated_or_non_json() -> None:
    c = compile_schema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    for text in ['{"a":1', "", "a: 1", '{"a":"1"}', "{}"]:
        with pytest.raises(SchemaOutputError):
            c.validate(text)


# --- fuzzing the converter: any schema either compiles or raises SchemaError, never anything else ----------

_leaf = st.one_of(
    st.just({"type": "string"}),
    st.just({"type": "integer"}),
    st.builds(
        lambda lo, n: {"type": "integer", "minimum": lo, "maximum": lo + n},
        st.integers(-5, 5),
        st.integers(-3, 3),
    ),
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(-1, 5)),
    st.builds(
        lambda p: {"type": "string", "pattern": p}, st.text(alphabet="ab*+?()[]|^$\\.{}1,", max_size=6)
    ),
    st.builds(
        lambda v: {"enum": v}, st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=3)
    ),
    st.builds(lambda v: {"const": v}, st.one_of(st.integers(), st.text(max_size=5), st.booleans())),
    st.sampled_from([True, False, {}, {"not": {}}, {"uniqueItems": True}, {"$ref": "#/$defs/missing"}]),
)
_schemas = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(
            lambda d: {"type": "object", "properties": d},
            st.dictionaries(st.text(max_size=4), inner, max_size=3),
        ),
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(lambda xs: {"anyOf": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"allOf": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"oneOf": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas)
def test_converter_fuzz_compiles_or_raises_schema_error(schema: object) -> None:
    try:
        c = compile_schema(schema, name="fuzz")
    except SchemaError as e:
        assert e.message and "\n" not in e.message
        return
    assert c.grammar
    assert all(u.pointer.startswith("/") for u in (*c.enforced, *c.validated_after, *c.ignored))


def test_patterns_python_warns_about_fail_cleanly() -> None:
    """Found by the fuzzer: re warns (FutureWarning, "possible nested set") while parsing "[[" and "[[]".
    Neither may reach the caller as a warning (errors here): "[[" is no regex, and "[[]", valid in Python,
    is refused by the grammar's regex dialect; both are one-line SchemaErrors."""
    with pytest.raises(SchemaError, match="not a 'regex'"):
        compile_schema({"type": "string", "pattern": "[["})
    with pytest.raises(SchemaError, match="regex"):
        compile_schema({"type": "string", "pattern": "^[[]$"})


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date-time", "2026-12-02T18:30:00Z", "2026-12-02 6pm"),
        ("time", "18:30:00+01:00", "6:30 pm"),
        ("duration", "P3DT4H", "three days"),
        ("uri", "https://example.org/a?b=c", "not a uri"),
        ("uri-reference", "../a/b", "\\\\bad path"),
        ("hostname", "example.org", "-bad-.example"),
        ("json-pointer", "/a/0", "a/0"),
        ("email", "ann@example.org", "ann-at-example"),
    ],
)
def test_validation_asserts_every_format_it_names(fmt: str, good: str, bad: str) -> None:
    """The README says formats are asserted by validation too (the path the ONNX backend, remote answers
    and keywords the grammar cannot express rely on): jsonschema skips a format whose checker library is
    missing, so each must really reject a bad value."""
    from edgekit.schema.validate import problems

    compiled = compile_schema({"type": "string", "format": fmt})
    assert problems(compiled, json.dumps(good))[1] == []
    assert problems(compiled, json.dumps(bad))[1], f"{fmt}: {bad!r} passed validation"
