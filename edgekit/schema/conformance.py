"""Run the official JSON-Schema-Test-Suite (draft 2020-12) against the schema-to-grammar path.

Each test group is one schema with instances marked valid or invalid. A group is

- ``refused`` when compiling raises SchemaError (unsatisfiable, or beyond the grammar compiler);
- ``after`` when the schema uses a keyword the grammar cannot enforce: its outputs are checked only
  by validation, so the grammar is not judged on it;
- ``grammar`` otherwise: every invalid instance must be rejected by the grammar (``false_accepts``
  lists any that are not) and every valid one accepted (``false_rejects`` lists those the grammar
  refuses; the grammar emits one canonical form, see NARROWER in tests/schema/test_conformance.py).

An instance is accepted when the matcher consumes all tokens of its compact serialization and can stop.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import SchemaError
from edgekit.schema.compile import compile_schema
from edgekit.schema.matcher import limits


@dataclass
class Coverage:
    groups: Counter[str] = field(default_factory=Counter)
    instances: Counter[str] = field(default_factory=Counter)
    false_accepts: list[tuple[str, str, str]] = field(default_factory=list)
    false_rejects: list[tuple[str, str, str]] = field(default_factory=list)
    per_file: dict[str, Counter[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{'file':28} {'grammar':>8} {'after':>6} {'refused':>8}"]
        for name, c in sorted(self.per_file.items()):
            out.append(f"{name:28} {c['grammar']:>8} {c['after']:>6} {c['refused']:>8}")
        out.append(
            f"groups: {dict(self.groups)}; instances judged by the grammar: {self.instances['grammar']}, "
            f"false accepts {len(self.false_accepts)}, false rejects {len(self.false_rejects)}"
        )
        return out


def accepts(tokenizer: Any, grammar: str, instance: Any) -> bool:
    from llguidance import LLMatcher

    matcher = LLMatcher(tokenizer, grammar, log_level=0, limits=limits())
    ids = tokenizer.tokenize_str(json.dumps(instance, ensure_ascii=False, separators=(",", ":")))
    consumed = matcher.try_consume_tokens(ids)
    return consumed == len(ids) and matcher.is_accepting() and not matcher.is_error()


def run_suite(folder: Path, tokenizer: Any) -> Coverage:
    cov = Coverage()
    for path in sorted(folder.glob("*.json")):
        counts = cov.per_file.setdefault(path.stem, Counter())
        for group in json.loads(path.read_text(encoding="utf-8")):
            kind = _judge(group, path.stem, tokenizer, cov)
            counts[kind] += 1
            cov.groups[kind] += 1
    return cov


def _judge(group: dict[str, Any], file: str, tokenizer: Any, cov: Coverage) -> str:
    try:
        compiled = compile_schema(group["schema"])
    except SchemaError:
        return "refused"
    if compiled.validated_after:
        cov.instances["after"] += len(group["tests"])
        return "after"
    for test in group["tests"]:
        cov.instances["grammar"] += 1
        ok = accepts(tokenizer, compiled.grammar, test["data"])
        where = (file, group["description"], test["description"])
        if ok and not test["valid"]:
            cov.false_accepts.append(where)
        elif not ok and test["valid"]:
            cov.false_rejects.append(where)
    return "grammar"
