"""The official JSON-Schema-Test-Suite (draft 2020-12, vendored under suite/ with its MIT license)
against the schema-to-grammar path, with the default model's tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgekit
from edgekit.errors import BackendError, SchemaError
from edgekit.schema import CompiledSchema, compile_schema
from edgekit.schema.conformance import Coverage, accepts, run_suite
from edgekit.schema.keywords import AFTER, GRAMMAR
from edgekit.schema.matcher import GrammarMask, tokenizer_for

from .test_compile import _schemas as schemas

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
    tokenizer = tokenizer_for(default_model.backend)
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


# --- fuzzing soundness: whatever the grammar accepts for an exact schema, validation accepts too ---------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats(-10, 10, allow_nan=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


N_VOCAB, EOS = 49152, (0, 2)  # the default model's vocabulary size and end tokens (checked below)
UNWRITABLE = frozenset({0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)})  # bytes with no token of their own


@pytest.fixture(scope="module")
def tokenizer(default_model: edgekit.Model) -> object:
    backend = default_model.backend
    assert backend.n_vocab == N_VOCAB and backend.llm.token_eos() in EOS  # type: ignore[attr-defined]
    return tokenizer_for(backend)


def _exact(schema: object) -> CompiledSchema | None:
    """The compiled schema when its grammar enforces every keyword; None for schemas the fuzzers skip."""
    try:
        compiled = compile_schema(schema)
    except SchemaError:
        return None
    return compiled if compiled.exact else None


@pytest.mark.model
@pytest.mark.slow
def test_grammar_never_accepts_what_validation_rejects(tokenizer: object) -> None:
    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(schemas, st.lists(_json, min_size=1, max_size=4))
    def check(schema: object, instances: list[object]) -> None:
        compiled = _exact(schema)
        if compiled is None:
            return
        for instance in instances:
            if accepts(tokenizer, compiled.grammar, instance):
                text = json.dumps(instance, ensure_ascii=False, separators=(",", ":"))
                compiled.validate(text)  # raises SchemaOutputError if the grammar let an invalid value in

    check()


@pytest.mark.model
@pytest.mark.slow
def test_random_walks_through_the_grammar_end_in_valid_values(tokenizer: object) -> None:
    """Sample tokens uniformly among those the mask allows (a random 'model'); every value it completes
    must validate."""
    completed = 0

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(schemas, st.randoms(use_true_random=False))
    def walk(schema: object, rng: random.Random) -> None:
        nonlocal completed
        compiled = _exact(schema)
        if compiled is None:
            return
        mask = GrammarMask(tokenizer, compiled.grammar, N_VOCAB)
        out: list[int] = []
        eos = set(EOS)
        for _ in range(100):
            allowed = [int(t) for t in np.flatnonzero(mask.allowed())]
            if not allowed or mask.done:
                break
            token = rng.choice(allowed)
            if token in eos:
                break
            try:
                mask.consume(token)
            except BackendError:
                # Known dead end: the default model's vocabulary has no token for some UTF-8 lead bytes
                # (0xF1, 0xF2, ...), so a const/enum holding such a character cannot be written, and
                # llguidance's mask then offers a token it refuses. Generation fails with a clear error.
                assert any(b in UNWRITABLE for b in compiled.text.encode()), compiled.text
                return
            out.append(token)
        if mask.accepting:
            completed += 1
            compiled.validate(tokenizer.decode_str(out))  # type: ignore[attr-defined]

    walk()
    assert completed >= 10  # the walks do reach complete values
