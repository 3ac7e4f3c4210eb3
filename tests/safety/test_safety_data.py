"""The safety training data: our own texts are well formed, and no training text turns up in a test or an
evaluation file (a classifier test on a training example proves nothing)."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from edgekit.safety.taxonomy import HAZARDS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import safety_data  # noqa: E402


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def test_authored_files_are_well_formed() -> None:
    labels = {"benign", *HAZARDS.values()}
    seen: dict[str, str] = {}
    files = sorted(safety_data.AUTHORED.glob("*.jsonl"))
    assert len(files) >= 7
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            where = f"{path.name}:{n}"
            assert set(row) == {"text", "label", "lang", "jailbreak"}, where
            assert row["label"] in labels and re.fullmatch(r"[a-z]{2}", row["lang"]), where
            assert isinstance(row["jailbreak"], bool) and row["text"].strip(), where
            key = _norm(row["text"])
            assert key not in seen, f"{where} repeats {seen.get(key)}"
            seen[key] = where


def _test_and_eval_texts() -> dict[str, str]:
    """Normalized text -> where, for every string of 20+ characters in a test or an evaluation file."""
    out: dict[str, str] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) >= 20:
                out[_norm(node.value)] = f"{path.relative_to(ROOT)}:{node.lineno}"
    evals = [*(ROOT / "recipes" / "data" / "eval").glob("*.txt"), ROOT / "recipes/data/router/prompts.jsonl"]
    for path in evals:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = json.loads(line)["prompt"] if path.suffix == ".jsonl" else line
            if len(text) >= 20:
                out[_norm(text)] = f"{path.relative_to(ROOT)}:{n}"
    return out


def test_no_training_text_appears_in_tests_or_evaluation_files() -> None:
    if (why := safety_data.missing()) is not None:
        pytest.skip(why)
    found = _test_and_eval_texts()
    train = [e for e in [*safety_data.inputs(), *safety_data.documents()] if e.split == "train"]
    assert len(train) > 5000
    leaks = [f"{found[k]}: {e.source}" for e in train if (k := _norm(e.text)) in found]
    assert not leaks, leaks[:10]


def test_splits_keep_groups_together() -> None:
    if (why := safety_data.missing()) is not None:
        pytest.skip(why)
    docs = safety_data.documents()
    for clean, attacked in zip(docs[::2], docs[1::2], strict=True):
        assert attacked.injected is not None and clean.split == attacked.split
        start, end = attacked.injected
        assert attacked.text[:start].strip() in clean.text and attacked.text[end:].strip() in clean.text


def test_more_attacks_are_train_documents_with_train_attacks_only() -> None:
    if (why := safety_data.missing()) is not None:
        pytest.skip(why)
    docs = safety_data.documents()
    extra = safety_data.more_attacks(docs, 2)
    train_clean = [e.text for e in docs if e.split == "train" and e.injected is None]
    assert len(extra) == 2 * len(train_clean)
    held_out_attacks = {
        e.text[e.injected[0] : e.injected[1]] for e in docs if e.split != "train" and e.injected is not None
    }
    flat = {t.replace("\n", "") for t in train_clean}
    for e in extra:
        assert e.split == "train" and e.injected is not None
        start, end = e.injected
        assert e.text[start:end] not in held_out_attacks
        assert (e.text[:start] + e.text[end:]).replace("\n", "") in flat
