"""edgekit run --schema and the chat /schema command, as a user runs them (a real process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..cli.test_cli import assert_clean_error, edgekit

pytestmark = [pytest.mark.model, pytest.mark.slow]

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "country": {"type": "string", "maxLength": 30},
    },
    "required": ["city", "country"],
    "additionalProperties": False,
}


def test_run_with_schema_prints_valid_json(default_model_path: Path, tmp_path: Path) -> None:
    schema = tmp_path / "city.json"
    schema.write_text(
        json.dumps({**CITY, "properties": {**CITY["properties"], "tags": {"uniqueItems": True}}})
    )
    proc = edgekit("run", "Where is the Eiffel tower?", "--schema", str(schema), "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc["value"]) >= {"city", "country"} and json.loads(doc["text"]) == doc["value"]
    assert "uniqueItems at /properties/tags/uniqueItems" in proc.stderr  # reported up front


def test_run_schema_errors_are_one_line(default_model_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "strnig"}')
    assert_clean_error(edgekit("run", "hi", "--schema", str(bad)), 2, "invalid schema at /type")
    strict = tmp_path / "strict.json"
    strict.write_text('{"type": "array", "uniqueItems": true}')
    assert_clean_error(edgekit("run", "hi", "--schema", str(strict), "--strict"), 2, "/uniqueItems")
    long = tmp_path / "long.json"
    long.write_text('{"type": "string", "minLength": 500}')
    assert_clean_error(edgekit("run", "hi", "--schema", str(long), "-n", "8"), 3, "ran out of tokens")


def test_chat_schema_command(default_model_path: Path, tmp_path: Path) -> None:
    schema = tmp_path / "city.json"
    schema.write_text(json.dumps(CITY))
    script = "\n".join(
        [
            f"/schema {schema}",
            "Where is the Colosseum?",
            "/schema",
            "/schema off",
            "/schema /no/such.json",
            "/exit",
        ]
    )
    proc = edgekit("chat", "--seed", "0", "--max-tokens", "60", stdin=(script + "\n").encode())
    assert proc.returncode == 0, proc.stderr
    answer = proc.stdout.split("(answers now follow the schema city)", 1)[1].strip().splitlines()[0]
    assert set(json.loads(answer)) == {"city", "country"}
    assert "(schema: city)" in proc.stdout and "(schema off)" in proc.stdout
    assert "cannot read the schema file" in proc.stderr
