from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.evaluation import (
    Item,
    Observation,
    default_items_path,
    is_correct,
    load_items,
    observe,
    rescore,
    summarize,
)
from edgekit.cascade.policy import Policy
from edgekit.cascade.router import Router
from edgekit.errors import InputError

from .fakes import FakeModel


def test_shipped_set_is_valid_and_split_in_two() -> None:
    items = load_items(default_items_path())
    assert len(items) >= 400 and {i.category for i in items} == {
        "fact",
        "arithmetic",
        "reasoning",
        "code",
        "translation",
    }
    splits = [i.split for i in items]
    assert 0.4 <= splits.count("calibration") / len(items) <= 0.6, "a hash split gives roughly halves"
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
        ("No, 91 is not prime.", {"type": "word", "values": ["no"]}, True),
        ("Yes, 91 is a prime number.", {"type": "word", "values": ["no"]}, False),
        ("The answer is NO.", {"type": "word", "values": ["no"]}, True),
    ],
)
def test_checkers(answer: str, check: dict[str, object], ok: bool) -> None:
    item = Item.model_validate({"id": "x", "category": "c", "prompt": "p", "check": check})
    assert is_correct(answer, item.check) is ok


ORDER = {"type": "word", "values": ["hugo"], "reject": ["gina", "ida"]}


@pytest.mark.parametrize(
    ("answer", "check", "ok"),
    [
        # Yes/no: exactly one of the two words, with or without an explicit reject list.
        ("Yes or no? No.", {"type": "word", "values": ["no"], "reject": ["yes"]}, False),
        ("yes, no", {"type": "any", "values": ["yes"]}, False),
        ("Yes, all bloops are lazzies.", {"type": "any", "values": ["yes"]}, True),
        # Short values match whole words only.
        ("It is not a number.", {"type": "any", "values": ["no"]}, False),
        ("Nothing to say, nobody knows.", {"type": "word", "values": ["no"]}, False),
        ("Water boils at 100 degrees.", {"type": "any", "values": ["0", "zero"]}, False),
        ("About 0.5 degrees.", {"type": "any", "values": ["0", "zero"]}, False),
        ("0°C", {"type": "any", "values": ["0", "zero"]}, True),
        ("Paul likes gold.", {"type": "any", "values": ["au"]}, False),
        ("Its symbol is Au.", {"type": "any", "values": ["au"]}, True),
        ("The price is right.", {"type": "any", "values": ["ice"]}, False),
        ("It is called ice.", {"type": "any", "values": ["ice"]}, True),
        # Multi-word values, non-ASCII letters, values with non-word characters at their ends.
        ("The capital is Buenos Aires.", {"type": "any", "values": ["buenos aires"]}, True),
        ("Buenos\n Aires!", {"type": "any", "values": ["buenos aires"]}, True),
        ("Buenos días.", {"type": "any", "values": ["buenos aires"]}, False),
        ("BRASÍLIA", {"type": "any", "values": ["brasília"]}, True),
        ("Brasi\u0301lia (decomposed accent)", {"type": "any", "values": ["brasília"]}, True),
        ("Brasíliano", {"type": "any", "values": ["brasília"]}, False),
        ("Water is H₂O.", {"type": "any", "values": ["h₂o"]}, True),
        ("H₂O₂ is peroxide.", {"type": "any", "values": ["h₂o"]}, False),
        ("I write C++.", {"type": "any", "values": ["c++"]}, True),
        ("abc++", {"type": "any", "values": ["c++"]}, False),
        # The answer must choose exactly one candidate.
        ("Hugo is the tallest.", ORDER, True),
        ("Hugo.", ORDER, True),
        ("Hugo is taller than Gina, so Hugo.", ORDER, False),
        ("Ida is the tallest.", ORDER, False),
        ("9", {"type": "number", "value": 9, "reject": ["17"]}, True),
        ("9 sheep are left.", {"type": "number", "value": 9, "reject": ["17"]}, True),
        ("Of the 17 sheep, 9", {"type": "number", "value": 9, "reject": ["17"]}, False),
        (
            "The coins are a quarter and a nickel.",
            {"type": "any", "values": ["nickel"], "reject": ["not a nickel"]},
            True,
        ),
        (
            "One of them is not a nickel",
            {"type": "any", "values": ["nickel"], "reject": ["not a nickel"]},
            False,
        ),
    ],
)
def test_checkers_judge_only_a_chosen_whole_word_answer(
    answer: str, check: dict[str, object], ok: bool
) -> None:
    item = Item.model_validate({"id": "x", "category": "c", "prompt": "p", "check": check})
    assert is_correct(answer, item.check) is ok


@pytest.mark.parametrize(
    "check",
    [
        {"type": "word", "values": ["yes"], "reject": ["Yes"]},
        {"type": "number", "value": 9, "reject": ["seventeen"]},
        {"type": "number", "value": 9, "reject": ["9"]},
    ],
)
def test_a_check_that_nothing_can_pass_is_refused(check: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Item.model_validate({"id": "x", "category": "c", "prompt": "p", "check": check})


def test_an_echo_of_the_prompt_fails_for_every_shipped_item() -> None:
    items = load_items(default_items_path())
    echoes = [i.id for i in items if is_correct(i.prompt, i.check)]
    assert echoes == []
    assert not any(is_correct(f"Question: {i.prompt} Answer: {i.prompt}", i.check) for i in items)
    # The items that an echo used to satisfy carry their prompt's wrong candidates.
    rejects = {i.id for i in items if i.check.reject}
    assert {"reasoning-01", "reasoning-14", "reasoning-101", "reasoning-145", "reasoning-174"} <= rejects


def test_a_right_answer_that_names_one_candidate_passes_for_every_shipped_item() -> None:
    for i in load_items(default_items_path()):
        if i.check.type == "number":
            assert i.check.value is not None
            answer = f"{i.check.value:g}"
        elif i.check.type == "regex":
            continue
        else:
            assert i.check.values
            answer = f"The answer is {i.check.values[0].title()}."
        assert is_correct(answer, i.check), (i.id, answer)


def test_the_builder_names_a_hand_written_item_whose_prompt_passes_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import sys

    tool = Path(__file__).resolve().parents[2] / "tools" / "build_router_set.py"
    spec = importlib.util.spec_from_file_location("build_router_set", tool)
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, builder)  # its dataclasses look their module up
    spec.loader.exec_module(builder)
    lines = default_items_path().read_text(encoding="utf-8").splitlines()[: builder.HAND_WRITTEN]
    for n, line in enumerate(lines):
        raw = json.loads(line)
        if raw["id"] == "reasoning-01":
            del raw["check"]["reject"]  # "Tom is taller than Ann. Ann is taller than Bob." accepts "bob"
            lines[n] = json.dumps(raw)
    monkeypatch.setattr(builder, "OUT", tmp_path / "prompts.jsonl")
    builder.OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"passes its own check.*: reasoning-01;"):
        builder.build()


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
    at = test["curve_at_target"]
    assert at["remote_share"] == pytest.approx(5 / 11) and at["share_vs_oracle"] == pytest.approx(5 / 4)


def test_an_answer_cut_off_by_the_token_limit_escalates_however_confident() -> None:
    cut = replace(obs(50, "test", False, True, 0.99), local_tokens=64, local_finish="length")
    data = [obs(i, split, True, True, 0.9) for split in ("calibration", "test") for i in range(6)]
    report = summarize([*data, obs(40, "calibration", False, True, 0.3), cut])
    assert report["test"]["reasons"]["cut off"] == {"escalations": 1, "precision": 1.0, "recall": 1.0}
    unrecorded = replace(cut, local_finish="")  # files from before the finish reason was recorded
    assert rescore([unrecorded], [], max_tokens=64)[0].local_cut
    assert not rescore([replace(unrecorded, local_tokens=12)], [], max_tokens=64)[0].local_cut


def test_the_report_gives_bootstrap_intervals_that_hold_the_point_estimate() -> None:
    data = []
    for split in ("calibration", "test"):
        data += [obs(i, split, True, i >= 5, 0.9) for i in range(30)]  # the remote misses 5 of these
        data += [obs(100 + i, split, False, True, 0.3) for i in range(10)]
    test = summarize(data)["test"]
    (q_lo, q_hi), (s_lo, s_hi) = (
        test["interval_95"]["quality_vs_remote"],
        test["interval_95"]["share_vs_oracle"],
    )
    assert q_lo <= test["quality_vs_remote"] <= q_hi and q_lo < q_hi
    assert s_lo <= test["share_vs_oracle"] <= s_hi
    assert summarize(data)["test"]["interval_95"] == test["interval_95"]  # seeded: the same every run


def test_shipped_set_is_what_its_builder_writes() -> None:
    import subprocess
    import sys

    tool = Path(__file__).resolve().parents[2] / "tools" / "build_router_set.py"
    done = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def item(i: int, prompt: str, answer: str) -> Item:
    return Item.model_validate(
        {"id": f"i{i}", "category": "c", "prompt": prompt, "check": {"type": "any", "values": [answer]}}
    )


def fake_router(tmp_path: Path, local: FakeModel, remote: FakeModel) -> Router:
    policy = Policy.parse(
        '[[tiers]]\nname = "tiny"\nkind = "local"\nmodel = "tiny"\n'
        '[[tiers]]\nname = "remote"\nkind = "remote"\nmodel = "big"\n'
    )
    ledger = BudgetLedger(policy.budget, tmp_path / "budget.json")
    return Router(policy, local=[local], remote=remote, traces=None, ledger=ledger)


def test_observe_reuses_saved_answers_for_unchanged_prompts_and_judges_them_again(tmp_path: Path) -> None:
    local, remote = FakeModel(answer="Paris."), FakeModel(answer="Paris, of course.")
    router = fake_router(tmp_path, local, remote)
    items = [item(1, "Capital of France?", "paris"), item(2, "Capital of Peru?", "lima")]
    sunk: list[Observation] = []
    first = observe(router, items, sink=sunk.append)
    assert sunk == first and len(remote.calls) == 2
    assert [(o.local_ok, o.remote_ok, o.local_answer) for o in first] == [
        (True, True, "Paris."),
        (False, False, "Paris."),
    ]

    # Item 2's check is fixed (same prompt: reused, judged again); item 3 is new; item 1 changed prompt.
    again = [
        item(1, "Capital of France, please?", "paris"),
        item(2, "Capital of Peru?", "paris"),
        item(3, "x?", "y"),
    ]
    second = observe(router, again, reuse=first)
    assert len(remote.calls) == 4, "only the changed and the new prompt were asked"
    assert [o.id for o in second] == ["i1", "i2", "i3"]
    assert second[1].local_ok and second[1].remote_ok and second[1].item_digest == again[1].digest
    # Observations without recorded answers cannot be judged again: kept as saved.
    bare = [Observation("i2", "c", "test", False, False, 0.5, None, False, 1, item_digest=again[1].digest)]
    assert rescore(bare, again) == bare


def test_observe_without_a_remote_is_an_input_error_unless_everything_is_saved(tmp_path: Path) -> None:
    router = fake_router(tmp_path, FakeModel(), FakeModel())
    items = [item(1, "Capital of France?", "paris")]
    saved = observe(router, items)
    router.remote = None
    assert observe(router, items, reuse=saved) == saved
    with pytest.raises(InputError, match="no remote tier"):
        observe(router, [*items, item(2, "Capital of Peru?", "lima")], reuse=saved)


def test_summary_skips_the_learned_model_when_calibration_is_too_small() -> None:
    data = [obs(0, "calibration", True, True, 0.9), obs(1, "test", False, True, 0.2)]
    report = summarize(data, prompts={"i0": "a", "i1": "b"}, embed=lambda texts: None)  # type: ignore[arg-type, return-value]
    assert "learned" not in report and "need at least" in report["learned_skipped"]


def test_observe_records_cross_check_agreement_and_never_reuses_results_without_it(tmp_path: Path) -> None:
    policy = Policy.parse(
        '[[tiers]]\nname = "tiny"\nkind = "local"\nmodel = "tiny"\ncross_check = { model = "small" }\n'
        '[[tiers]]\nname = "remote"\nkind = "remote"\nmodel = "big"\n'
    )
    small, remote = FakeModel(answer="Lima."), FakeModel(answer="Lima.")
    router = Router(policy, local=[FakeModel(answer="Paris.")], remote=remote, cross_check={"tiny": small})
    items = [item(1, "Capital of Peru?", "lima")]
    plain = observe(fake_router(tmp_path, FakeModel(answer="Paris."), FakeModel(answer="Lima.")), items)
    assert plain[0].agreement is None
    checked = observe(router, items, reuse=plain)
    assert len(remote.calls) == 1, "a result without agreement is answered again"
    assert checked[0].agreement == 0.0 and checked[0].check_answer == "Lima." and len(small.calls) == 1
    agreeing = replace(checked[0], local_answer="Lima!")
    assert rescore([agreeing], items)[0].agreement == 1.0, "agreement is measured again from the answers"


def test_public_router_set_is_test_only_and_echo_proof(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second router set: every item test-only; a table answer must pick one cell of its column; a
    word problem whose last prompt number is the answer, or a table answer outside one column, is left out.
    """
    import importlib.util
    import sys

    tool = Path(__file__).resolve().parents[2] / "tools" / "build_router_public_set.py"
    spec = importlib.util.spec_from_file_location("build_router_public_set", tool)
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, builder)
    spec.loader.exec_module(builder)
    gsm = [
        {"question": "Ann has 3 apples and buys 4 more. How many now?", "answer": "3+4=7\n#### 7"},
        {"question": "Bo had 2 cats. Now he has 5 cats. How many cats?", "answer": "#### 5"},  # echo
    ]
    table = "| Team | Wins |\n| Reds | 10 |\n| Blues | 7 |\n| Greens | 3 |\n"
    tables = [
        {"context": table, "question": "which team won the most?", "ideal": "Reds"},
        {"context": table, "question": "how many wins in all?", "ideal": "20"},  # not a cell
    ]
    for rel, rows in ((builder.GSM8K, gsm), (builder.TABLES, tables)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(builder, "N_GSM8K", 1)
    monkeypatch.setattr(builder, "N_TABLES", 1)
    items = builder.build(tmp_path)
    assert [i.id for i in items] == ["gsm8k-1", "table-1"]
    assert all(i.split == "test" for i in items)
    cell = items[1]
    assert cell.check.reject == ["blues", "greens"]
    assert is_correct("The Reds won the most games.", cell.check)
    assert not is_correct("Reds or Blues", cell.check)
    assert not any(is_correct(i.prompt, i.check) for i in items)


def test_a_test_only_set_is_reported_with_thresholds_chosen_on_another_sets_calibration_split() -> None:
    shipped = [obs(i, "calibration", True, True, 0.9) for i in range(6)]
    shipped += [obs(10 + i, "calibration", False, True, 0.5) for i in range(4)]
    shipped += [obs(20 + i, "test", True, True, 0.1) for i in range(3)]  # never read for the threshold
    other = [obs(30 + i, "test", True, True, 0.6) for i in range(5)]  # another distribution
    other += [obs(40 + i, "test", False, True, 0.4) for i in range(5)]
    fixed = summarize(other, calibration=shipped)
    assert 0.5 < fixed["threshold"] <= 0.9  # from the shipped calibration split alone
    assert fixed["items"] == {"calibration": 10, "test": 10}
    # at that threshold the other set keeps its 0.6 answers local and escalates its 0.4 ones
    assert fixed["test"]["cascade"] == {"threshold": fixed["threshold"], "quality": 1.0, "remote_share": 0.5}
    assert fixed["threshold"] == summarize(shipped)["threshold"]
