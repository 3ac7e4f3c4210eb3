"""Calibration sets: file formats, bad input, and the overlap check against evaluation text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli.errors import exit_code
from edgekit.compress.calibration import (
    MIN_CHARS,
    OVERLAP_THRESHOLD,
    CalibrationError,
    check_overlap,
    evaluation_texts,
    load_calibration,
    overlap,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recipes" / "data" / "calibration"

PARAGRAPH = "The ferry to the island leaves twice a day, at seven and at four, weather permitting. " * 8


def test_txt_documents_are_split_on_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "cal.txt"
    f.write_text(f"{PARAGRAPH}\n\n  \n{PARAGRAPH.upper()}\n\n\n{PARAGRAPH[:300]}\n", encoding="utf-8")
    cal = load_calibration(f, min_chars=100)
    assert len(cal.texts) == 3
    assert cal.texts[1] == PARAGRAPH.upper().strip()
    assert cal.name == "cal.txt"
    assert len(cal.sha256) == 64


def test_jsonl_messages_render_with_the_chat_template(tmp_path: Path) -> None:
    f = tmp_path / "cal.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": PARAGRAPH}]},
        {"text": PARAGRAPH},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    cal = load_calibration(f, min_chars=100)
    assert cal.texts[0].startswith("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n")
    assert cal.texts[1] == PARAGRAPH
    custom = load_calibration(
        f, min_chars=100, chat_template="{% for m in messages %}[{{ m.role }}]{% endfor %}"
    )
    assert custom.texts[0] == "[user][assistant]"


def test_folder_hash_follows_every_member(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(PARAGRAPH * 3, encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")
    first = load_calibration(tmp_path)
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "one more document"}) + "\n", encoding="utf-8")
    second = load_calibration(tmp_path)
    assert len(second.texts) == len(first.texts) + 1
    assert first.sha256 != second.sha256
    assert second.subset(1).texts == second.texts[:1] and second.subset(1).sha256 != second.sha256


@pytest.mark.parametrize("content", ["", "\n\n   \n", "Too short to calibrate anything."])
def test_empty_or_short_text_names_the_minimum(tmp_path: Path, content: str) -> None:
    f = tmp_path / "cal.txt"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(CalibrationError) as e:
        load_calibration(f)
    assert f"{MIN_CHARS:,}" in e.value.message
    assert exit_code(e.value) == 2


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="no such file"):
        load_calibration(tmp_path / "missing.txt")
    (tmp_path / "data.csv").write_text(PARAGRAPH * 5, encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"\.txt or \.jsonl"):
        load_calibration(tmp_path / "data.csv")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": PARAGRAPH * 5}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"bad\.jsonl:2: not valid JSON"):
        load_calibration(bad)
    bad.write_text(json.dumps({"messages": [{"role": "user"}]}) + "\n", encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"bad\.jsonl:1: expected"):
        load_calibration(bad)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("caf\xe9 " * 1000).encode("latin-1"))
    with pytest.raises(CalibrationError, match="not UTF-8"):
        load_calibration(latin)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(CalibrationError, match=r"no \.txt or \.jsonl"):
        load_calibration(empty_dir)


def test_overlap_warns_when_calibration_copies_evaluation_text(tmp_path: Path) -> None:
    evaluation = evaluation_texts()
    copied = tmp_path / "copied.txt"
    copied.write_text(evaluation[0] + "\n\n" + PARAGRAPH, encoding="utf-8")
    report = check_overlap(load_calibration(copied))
    assert report.share > 0.5
    assert report.warning is not None and "copied.txt" in report.warning

    own = tmp_path / "own.txt"
    own.write_text(PARAGRAPH * 3, encoding="utf-8")
    clean = check_overlap(load_calibration(own))
    assert clean.share == 0.0 and clean.warning is None
    assert overlap(["a b c d e f g h i"], ["x a b c d e f g h y"], n=8) == 0.5


def test_shipped_calibration_set_is_large_and_apart_from_the_evaluation_text() -> None:
    cal = load_calibration(SHIPPED)
    assert cal.chars > 100_000  # about 35,000 tokens of the default model
    report = check_overlap(cal)
    assert report.share < OVERLAP_THRESHOLD, report.warning
    kinds = {p.name for p in SHIPPED.glob("*.jsonl")}
    assert {"chat.jsonl", "structured.jsonl", "hard_cases.jsonl", "refusal_clarification.jsonl"} <= kinds
