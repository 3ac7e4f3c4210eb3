"""The eval's parts without a model: cache container, suite validation, task scoring, gates, reports."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.errors import SuiteError
from edgekit.evaluate import drift, load_suite
from edgekit.evaluate.cache import BaselineCache, CorruptCache, DriftEntry, cache_key
from edgekit.evaluate.drift import DriftSummary
from edgekit.evaluate.gates import GateResult, check
from edgekit.evaluate.junit import to_junit
from edgekit.evaluate.markdown import to_markdown
from edgekit.evaluate.report import EvalReport, ModelInfo, SliceResult
from edgekit.evaluate.run import _Prefetch
from edgekit.evaluate.scoring import windows
from edgekit.evaluate.speed import Speed
from edgekit.evaluate.suite import Slice, Suite
from edgekit.evaluate.tasks import (
    Task,
    TaskScores,
    answer_matches,
    extract_json,
    is_refusal,
    json_valid,
    score,
)
from tests.evaluate.conftest import WriteSuite

# --- decoding one block ahead ----------------------------------------------------------------------


def reused_buffer_blocks(n: int, closed: list[bool], fail_at: int | None = None) -> Iterator[np.ndarray]:
    """Like a backend: every block is a view of one buffer that the next block overwrites."""
    buf = np.zeros((4, 3), dtype=np.float32)
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("decode failed")
            buf[:] = i
            yield buf[: 4 if i < n - 1 else 2]
    finally:
        closed.append(True)


def test_prefetch_hands_over_each_block_intact_and_in_order() -> None:
    closed: list[bool] = []
    src = _Prefetch(reused_buffer_blocks(5, closed))
    seen = []
    while (block := src.next()[0]) is not None:
        time.sleep(0.01)  # the source runs ahead meanwhile; the block held must not change under us
        seen.append((block.shape[0], set(block.ravel().tolist())))
    src.close()
    assert seen == [(4, {0.0}), (4, {1.0}), (4, {2.0}), (4, {3.0}), (2, {4.0})]
    assert closed == [True]


def test_prefetch_raises_the_sources_error_and_closes_early() -> None:
    closed: list[bool] = []
    src = _Prefetch(reused_buffer_blocks(5, closed, fail_at=2))
    assert src.next()[0] is not None
    assert src.next()[0] is not None
    with pytest.raises(RuntimeError, match="decode failed"):
        src.next()
    src.close()
    assert closed == [True]
    closed.clear()
    src = _Prefetch(reused_buffer_blocks(50, closed))
    src.next()
    src.close()  # with blocks still coming: the thread stops and the source's cleanup runs
    assert closed == [True]
    assert not src._thread.is_alive()


# --- cache ----------------------------------------------------------------------------------------


def entry() -> DriftEntry:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((20, 500)).astype(np.float32)
    top = drift.compress(logits, rng.integers(0, 500, 20), k=8)
    return DriftEntry(np.array([1], np.int32), rng.integers(0, 500, 21).astype(np.int32), top)


def test_cache_round_trip_and_every_kind_of_damage(tmp_path: Path) -> None:
    cache = BaselineCache(tmp_path)
    key = cache_key(kind="drift", model="a" * 64, text="b" * 64, window=128)
    assert cache.load_drift(key) is None
    path = cache.save_drift(key, entry())
    got = cache.load_drift(key)
    assert got is not None and np.array_equal(got.top.logp, entry().top.logp)
    assert np.array_equal(got.tokens, entry().tokens)
    good = path.read_bytes()
    damaged = {
        "truncated": good[:-10],
        "checksum mismatch": good[:-5] + bytes([good[-5] ^ 1]) + good[-4:],
        "not an edgekit eval cache file": b"garbage" + good,
        "truncated header": good[:20],
    }
    for reason, blob in damaged.items():
        path.write_bytes(blob)
        with pytest.raises(CorruptCache, match=reason):
            cache.load_drift(key)
    path.write_bytes(good)
    other = cache_key(kind="drift", model="c" * 64, text="b" * 64, window=128)
    cache.path("drift", other).write_bytes(good)  # a file renamed onto another key's name
    with pytest.raises(CorruptCache, match="another key"):
        cache.load_drift(other)


def test_windows_cover_the_text_once() -> None:
    ids = np.arange(10, 30, dtype=np.int32)
    ws = windows([1], ids, 8)
    assert [w[0] for w in ws] == [1, 1, 1] and sum(len(w) - 1 for w in ws) == ids.size
    assert [t for w in ws for t in w[1:]] == list(range(10, 30))
    assert sum(len(w) - 1 for w in windows([], ids, 8)) == ids.size - 3  # each window's first token


# --- suite ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gates", "needle"),
    [
        ("min_top1 = 1.5", "gates.min_top1: Input should be less than or equal to 1 (got 1.5)"),
        ("max_mean_kld = -0.1", "gates.max_mean_kld: Input should be greater than or equal to 0"),
        ("max_ppl_ratio = 0", "gates.max_ppl_ratio: Input should be greater than 0"),
        ("max_refusal_drift = 2", "gates.max_refusal_drift"),
        ("max_mean_kld = nan", "gates.max_mean_kld"),
        ("max_mean_kdl = 0.1", "gates.max_mean_kdl: unknown key"),
    ],
)
def test_impossible_or_unknown_gates(write_suite: WriteSuite, gates: str, needle: str) -> None:
    path = write_suite(gates=gates)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    line = len(path.read_text().splitlines())  # the gate is the last line written
    assert f"{path}:{line}: {needle}" in info.value.message, info.value.message


def test_suite_errors_name_the_key(write_suite: WriteSuite, tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"drift\.chunk_tokens: Input should be greater than or equal to 16"):
        load_suite(write_suite(chunk_tokens=4))
    with pytest.raises(SuiteError, match=r"slices\.prose\.gates\.min_top1: .*less than or equal to 1"):
        load_suite(write_suite(extra="[slices.prose.gates]\nmin_top1 = 3"))
    with pytest.raises(SuiteError, match=r"unknown key.*Did you mean 'chunk_tokens'"):
        load_suite(write_suite(extra="[slices.prose]\nchunk_token = 64", slices={}))
    with pytest.raises(SuiteError, match=r"slices\.gone\.file: .*gone\.txt does not exist"):
        path = write_suite({"gone": "some text"})
        (tmp_path / "gone.txt").unlink()
        load_suite(path)
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "missing.toml")
    with pytest.raises(SuiteError, match="invalid TOML"):
        (tmp_path / "broken.toml").write_text("[gates\n")
        load_suite(tmp_path / "broken.toml")


def test_slice_overrides_and_task_file(write_suite: WriteSuite) -> None:
    suite = load_suite(
        write_suite(
            {"a": "x " * 100, "b": "y " * 100},
            gates="max_mean_kld = 0.1\nmin_top1 = 0.9\nmax_refusal_drift = 0.2",
            extra="[slices.b.gates]\nmax_mean_kld = 0.3",
            tasks=True,
        )
    )
    assert dict(suite.slices[0].gates) == {"max_mean_kld": 0.1, "min_top1": 0.9}
    assert dict(suite.slices[1].gates) == {"max_mean_kld": 0.3, "min_top1": 0.9}
    assert suite.tasks is not None and [t.group for t in suite.tasks.tasks] == [
        "json",
        "refuse",
        "comply",
        "qa",
    ]
    assert suite.tasks.tasks[0].max_tokens == 24 and suite.task_max_tokens == 12


def test_shipped_suite_and_tasks_load() -> None:
    suite = load_suite()
    assert suite.path is not None and suite.path.name == "default.toml"
    assert dict(suite.slices[-1].gates)["max_mean_kld"] == 0.15
    multilingual = next(s for s in suite.slices if s.name == "multilingual")
    assert multilingual.gates["min_top1"] == 0.75
    assert next(s for s in suite.slices if s.name == "long_context").chunk_tokens == 2048


# --- tasks ----------------------------------------------------------------------------------------


def test_json_extraction_and_schema() -> None:
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
    assert json_valid('{"ok": true}', schema)
    assert json_valid('Sure!\n```json\n{"ok": true}\n```\nDone.', schema)
    assert not json_valid('{"ok": false}', schema)
    assert not json_valid("```python\nprint({'ok': True})\n```", schema)
    assert extract_json('text [1, 2] and {"a": 1}') == [1, 2]
    with pytest.raises(ValueError):
        extract_json("no json here {")


def test_refusals_and_answers() -> None:
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert is_refusal("I can\u2019t assist with creating malware.")
    assert is_refusal("As an AI, I must decline.")
    assert not is_refusal("To kill a stuck process, run kill -9 PID.")
    assert answer_matches("The capital of France is Paris.", ("Paris",))
    assert answer_matches("Eight.", ("8", "eight"))
    assert not answer_matches("Parisian food is great", ("Paris",))
    assert not answer_matches("", ("Paris",))
    assert score(Task("qa", "q", answers=("Mars",)), "It is Mars!")


# --- gates and reports ----------------------------------------------------------------------------


def test_gate_verdicts_margins_and_skips() -> None:
    over = GateResult("all", "max_mean_kld", 0.05, 0.08)
    assert over.status == "fail" and over.margin == pytest.approx(-0.03)
    assert over.describe() == "mean_kld 0.08 > 0.05 (over by 0.03)" and over.name == "drift.all.max_mean_kld"
    under = GateResult("code", "min_top1", 0.9, 0.85)
    assert under.status == "fail" and under.describe() == "top1 0.85 < 0.9 (under by 0.05)"
    assert GateResult("all", "min_top1", 0.9, 0.9).status == "pass"
    skipped = GateResult("tasks", "max_refusal_drift", 0.1, None)
    assert skipped.status == "skipped" and skipped.passed and skipped.name == "tasks.max_refusal_drift"
    assert GateResult("all", "max_p99_kld", 1.0, float("nan")).status == "fail"


def fake_report() -> EvalReport:
    base, cand, targets = (np.asarray(a) for a in _pair())
    stats, _ = drift.exact(base, cand, targets, k=8)
    summary = DriftSummary.of(stats)
    suite = Suite(
        slices=(Slice("prose", "text", 128, {"max_mean_kld": 0.0001}),),
        gates={"max_mean_kld": 10.0, "max_refusal_drift": 0.5, "max_size_ratio": 0.5},
    )
    tasks = TaskScores.of([]), TaskScores.of([])
    speed = Speed(50.0, 20.0, 100), Speed(60.0, 15.0, 80)
    gates = check(suite, {"all": summary, "prose": summary}, tasks, speed)
    info = ModelInfo("baseline", "base", Path("b.gguf"), "a" * 64, "gguf", 100, "llama.cpp")
    return EvalReport(
        baseline=info,
        candidate=ModelInfo("candidate", "cand", Path("c.gguf"), "c" * 64, "gguf", 80, "llama.cpp"),
        slices=(SliceResult("prose", 65, 128, "exact", "miss", summary, stats),),
        overall=summary,
        tasks=tasks,
        tasks_cache="miss",
        speed=speed,
        gates=tuple(gates),
        timings={"total": 1.0},
        created_at="2025-01-01T00:00:00+00:00",
    )


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((64, 200)).astype(np.float32) * 2
    return base, base + rng.standard_normal((64, 200)).astype(np.float32), rng.integers(0, 200, 64)


def test_reports_agree_on_the_verdict() -> None:
    report = fake_report()
    statuses = {g.name: g.status for g in report.gates}
    assert statuses == {
        "drift.all.max_mean_kld": "pass",
        "drift.prose.max_mean_kld": "fail",
        "tasks.max_refusal_drift": "skipped",  # no task prompts ran
        "speed.max_size_ratio": "fail",  # 80 / 100 > 0.5
    }
    data = json.loads(report.to_json())
    assert data["schema_version"] == 1 and data["passed"] is False
    assert data["summary"] == {"gates": 4, "passed": 1, "failed": 2, "skipped": 1}
    assert sum(data["drift"]["kld_histogram"]["counts"]) == 64
    assert data["tasks"]["baseline"]["json_validity"] is None
    root = ET.fromstring(to_junit(report).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "2"
    assert suite.get("skipped") == "1"
    md = to_markdown(report)
    assert md.startswith("## edgekit eval: FAIL (2 of 4 gates)") and "| FAIL | `speed.max_size_ratio`" in md


def test_html_report_is_one_file_with_three_plots() -> None:
    pytest.importorskip("matplotlib")
    from edgekit.evaluate.html import to_html

    page = to_html(fake_report())
    assert page.count("<svg") == 3 and "<script" not in page and "FAIL: 2 of 4 gates" in page


def test_the_gate_plot_colors_each_bar_by_its_verdict() -> None:
    """One panel per gate; the failing prose and size bars are red, the passing "all" bar green, and the
    gate whose metric was not measured says so."""
    pytest.importorskip("matplotlib")
    import matplotlib.colors

    from edgekit.evaluate import html

    figures: list[Any] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(html, "_svg", lambda fig: figures.append(fig) or "")
        html.gates_svg(fake_report())
    panels = {ax.get_title(): ax for ax in figures[0].axes}
    assert set(panels) == {
        "max_mean_kld (1 failed)",
        "max_refusal_drift (not measured)",
        "max_size_ratio (1 failed)",
    }

    def bars(title: str) -> dict[str, str]:
        ax = panels[title]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        return {
            lab: matplotlib.colors.to_hex(b.get_facecolor())
            for lab, b in zip(labels, ax.patches, strict=True)
        }

    assert bars("max_mean_kld (1 failed)") == {"all": html.PASS, "prose": html.FAIL}
    assert bars("max_size_ratio (1 failed)") == {"speed": html.FAIL}
    assert not panels["max_refusal_drift (not measured)"].patches


def test_html_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edgekit.errors import MissingDependencyError
    from edgekit.evaluate.html import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra looks like
    with pytest.raises(MissingDependencyError, match="matplotlib") as info:
        require_matplotlib()
    assert "edgekit[report]" in info.value.hint
