from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cascade.evaluation import (
    Item,
    Observation,
    default_items_path,
    is_correct,
    load_items,
    summarize,
)
from edgekit.errors import InputError


def test_shipped_set_is_valid_and_split_in_two() -> None:
    items = load_items(default_items_path())
    assert len(items) == 100 and {i.category for i in items} == {
        "fact",
        "arithmetic",
        "reasoning",
        "code",
        "translation",
    }
    splits = [i.split for i in items]
    assert 35 <= splits.count("calibration") <= 65, "a hash split gives roughly halves"
    assert items[0].split == Item.model_validate(json.loads(json.dumps(items[0].model_dump()))).split, (
        "stable"
    )


@pytest.mark.parametrize(
    ("answer", "check", "ok"),
    [
        ("The capital of France is Paris.", {"type": "any", "values": ["paris"]}, True),
        ("It is Lyon.", {"type": "any", "values": ["paris"]}, False),
        ("17 times 23 is 391.", {"type": "number", "value": 391}, True),
        ("17 times 23 is 312.", {"type": "number", "value": 391}, False),
        ("1,024", {"type": "number", "value": 1024}, True),
        ("no number", {"type": "number", "value": 3}, False),
        ("def add(a, b):\n    return a + b", {"type": "regex", "pattern": r"def\s+add"}, True),
    ],
)
def test_checkers(answer: str, check: dict[str, object], ok: bool) -> None:
    item = Item.model_validate({"id": "x", "category": "c", "prompt": "p", "check": check})
    assert is_correct(answer, item.check) is ok


def test_bad_item_file_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "items.jsonl"
    f.write_text(
        '{"id": "a", "category": "c", "prompt": "p", "check": {"type": "any", "values": ["x"]}}\n'
        '{"id": "b", "category": "c", "prompt": "p", "check": {"type": "maybe"}}\n'
    )
    with pytest.raises(InputError, match=r"items.jsonl:2: bad item"):
        load_items(f)


def obs(
    i: int, split: str, local_ok: bool, remote_ok: bool, prob: float, gate: str | None = None
) -> Observation:
    return Observation(f"i{i}", "c", split, local_ok, remote_ok, prob, gate, False, 100)  # type: ignore[arg-type]


def test_summary_picks_the_threshold_on_calibration_and_reports_on_test() -> None:
    # Confidence separates well: wrong local answers have low probability.
    data = []
    for split in ("calibration", "test"):
        data += [obs(i, split, True, True, 0.9) for i in range(6)]
        data += [obs(10 + i, split, False, True, 0.3) for i in range(4)]
    data.append(obs(99, "test", True, True, 0.95, gate="gate keywords:domain: domain: matched x"))
    report = summarize(data)
    assert 0.3 < report["threshold"] <= 0.9
    test = report["test"]
    assert (
        test["always_local"]["quality"] == pytest.approx(7 / 11) and test["always_remote"]["quality"] == 1.0
    )
    assert test["oracle"]["remote_share"] == pytest.approx(4 / 11)
    assert test["cascade"]["quality"] == 1.0 and test["cascade"]["remote_share"] == pytest.approx(5 / 11)
    assert test["reasons"]["signals"] == {"escalations": 4, "precision": 1.0, "recall": 1.0}
    assert test["reasons"]["gate keywords:domain"]["precision"] == 0.0
    assert test["remote_tokens_saved"] == pytest.approx(6 / 11)
