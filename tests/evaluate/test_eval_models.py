"""edgekit eval on real models: the default model against itself and against a Q2_K requantization of
it, the CLI's exit codes and reports, the baseline cache, and every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import (
    InputError,
    ModelFileError,
    SuiteError,
    UnknownModelError,
)
from edgekit.evaluate import load_suite, run_eval
from tests.evaluate.conftest import WriteSuite, excerpt

pytestmark = pytest.mark.model

TIGHT_GATES = "max_mean_kld = 0.0001\nmax_p99_kld = 0.001\nmin_top1 = 0.999\nmax_ppl_ratio = 1.0001"
LOOSE_GATES = "max_mean_kld = 0.05\nmax_p99_kld = 0.5\nmin_top1 = 0.9\nmax_ppl_ratio = 1.05"


def edgekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "EDGEKIT_THREADS": os.environ.get("EDGEKIT_THREADS", "1")},
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "(hint: " in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def two_slices() -> dict[str, str]:
    return {"prose": excerpt("prose.txt", 700), "code": excerpt("code.txt", 600)}


def cache_files(cache: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted((cache / "eval").glob("*.bin"))}


# --- the verdicts ---------------------------------------------------------------------------------


def test_model_against_itself_passes_with_zero_drift(
    default_model_path: Path, eval_cache: Path, write_suite: WriteSuite, tmp_path: Path
) -> None:
    suite = write_suite(
        two_slices(), gates=LOOSE_GATES + "\nmax_refusal_drift = 0\n", tasks=True, speed_runs=1
    )
    out = tmp_path / "out"
    model = str(default_model_path)
    proc = edgekit(
        "eval", "-b", model, "-c", model, "--suite", str(suite),
        "--json", str(out / "r.json"), "--junit", str(out / "r.xml"),
        "--markdown", str(out / "r.md"), "--html", str(out / "r.html"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "PASS" in proc.stdout
    report = json.loads((out / "r.json").read_text())
    assert report["schema"] == "edgekit.eval" and report["schema_version"] == 1 and report["passed"]
    drift = report["drift"]["all"]
    assert drift["tokens"] > 200 and drift["mean_kld"] < 1e-6 and drift["max_kld"] < 1e-4
    assert drift["top1"] == 1.0 and abs(drift["ppl_ratio"] - 1) < 1e-6
    assert {s["kld_method"] for s in report["drift"]["slices"].values()} == {"exact"}
    tasks = report["tasks"]
    assert tasks["baseline"]["exact_match"] == tasks["candidate"]["exact_match"] == 1.0  # "Paris"
    assert all(v == 0 for v in tasks["delta"].values() if v is not None)
    speed = report["speed"]
    assert speed["baseline"]["gen_tok_s"] > 0 and speed["candidate"]["ttft_ms"] > 0
    assert speed["baseline"]["size_bytes"] == default_model_path.stat().st_size
    assert report["summary"]["failed"] == 0 and report["summary"]["gates"] == len(report["gates"]) == 13
    suite_xml = ET.parse(out / "r.xml").getroot().find("testsuite")
    assert suite_xml is not None and suite_xml.get("failures") == "0"
    cases = suite_xml.findall("testcase")
    assert len(cases) == 13 and {c.get("classname") for c in cases} >= {"edgekit.eval.drift.all"}
    assert "PASS" in (out / "r.md").read_text()
    page = (out / "r.html").read_text()
    assert page.count("<svg") == 3 and "http://" not in page.split("<svg", 1)[0]  # one self-contained file
    assert oct((out / "r.json").stat().st_mode & 0o777) != "0o600"  # a normal file, not a temp file's mode


def test_requantized_model_fails_tight_gates_and_junit_shows_them(
    default_model_path: Path, requantized: Path, eval_cache: Path, write_suite: WriteSuite, tmp_path: Path
) -> None:
    suite = write_suite(two_slices(), gates=TIGHT_GATES + "\nmax_size_ratio = 2.0\n")
    proc = edgekit(
        "eval", "--baseline", str(default_model_path), "--candidate", str(requantized), "--suite", str(suite),
        "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"),
    )  # fmt: skip
    assert_one_line_error(proc, 1, "gates failed", "drift.all.max_mean_kld")
    assert "FAIL" in proc.stdout and "over by" in proc.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert not report["passed"]
    failed = {g["name"] for g in report["gates"] if g["status"] == "fail"}
    assert {"drift.all.max_mean_kld", "drift.prose.max_mean_kld", "drift.code.max_p99_kld"} <= failed
    assert "speed.max_size_ratio" not in failed  # Q2_K is smaller: that gate passes
    drift = report["drift"]["all"]
    assert 0.001 < drift["mean_kld"] < 2 and 0.5 < drift["top1"] < 1 and drift["ppl_ratio"] > 1
    root = ET.parse(tmp_path / "r.xml").getroot()
    suite_xml = root.find("testsuite")
    assert suite_xml is not None and int(suite_xml.get("failures", "0")) == len(failed)
    failures = {
        f"{c.get('classname')}.{c.get('name')}": c.find("failure")
        for c in suite_xml.findall("testcase")
        if c.find("failure") is not None
    }
    assert set(failures) == {f"edgekit.eval.{name}" for name in failed}
    message = failures["edgekit.eval.drift.all.max_mean_kld"].get("message")  # type: ignore[union-attr]
    assert message and message.startswith("mean_kld ") and "> 0.0001 (over by" in message


def test_second_run_reads_the_cached_baseline_and_topk_kld_matches_exact(
    default_model_path: Path, requantized: Path, eval_cache: Path, write_suite: WriteSuite
) -> None:
    suite = write_suite(two_slices(), gates=LOOSE_GATES, tasks=True, speed_runs=1)
    cold = run_eval(default_model_path, requantized, suite=suite)
    files = cache_files(eval_cache)
    assert len(files) == 3  # two slices and the baseline's task answers
    assert {s.kld_method for s in cold.slices} == {"exact"} and cold.tasks_cache == "miss"
    assert cold.speed[0].scoring_tok_s is not None

    warm = run_eval(default_model_path, requantized, suite=suite)
    assert cache_files(eval_cache) == files  # read, not rewritten
    assert {s.baseline_cache for s in warm.slices} == {"hit"} and warm.tasks_cache == "hit"
    assert {s.kld_method for s in warm.slices} == {"topk"}
    assert warm.speed[0].scoring_tok_s is None  # the baseline scored nothing in this run
    assert warm.tasks is not None and cold.tasks is not None
    assert warm.tasks[0].outcomes == cold.tasks[0].outcomes
    # The baseline, closed while the candidate worked alone, was opened again for its speed runs.
    assert warm.speed[0].gen_tok_s is not None and warm.speed[1].gen_tok_s is not None

    # Scored text cached but the task answers gone: the baseline stays open and answers them again.
    (answers,) = (eval_cache / "eval").glob("tasks-*.bin")
    answers.unlink()
    partial = run_eval(default_model_path, requantized, suite=suite)
    assert partial.tasks_cache == "miss" and {s.baseline_cache for s in partial.slices} == {"hit"}
    assert partial.tasks is not None and partial.tasks[0].outcomes == cold.tasks[0].outcomes
    assert answers.exists()
    answers.write_bytes(answers.read_bytes()[:-10])  # damaged: read once, discarded, said so, answered again
    damaged = run_eval(default_model_path, requantized, suite=suite)
    assert damaged.tasks_cache.startswith("recomputed (")
    assert damaged.tasks is not None and damaged.tasks[0].outcomes == cold.tasks[0].outcomes

    for c, w in zip(cold.slices, warm.slices, strict=True):
        # The top-k + tail form is a lower bound on the exact KLD and close to it.
        assert np.all(w.stats.kld <= c.stats.kld + 1e-5)
        assert w.summary.mean_kld == pytest.approx(c.summary.mean_kld, rel=0.05, abs=1e-4)
        assert w.summary.p99_kld == pytest.approx(c.summary.p99_kld, rel=0.1, abs=1e-3)
        assert w.summary.top1 == c.summary.top1
        assert w.summary.ppl_baseline == pytest.approx(c.summary.ppl_baseline, rel=1e-5)
        assert w.summary.ppl_candidate == pytest.approx(c.summary.ppl_candidate, rel=1e-5)
        assert w.summary.top_p_rms == pytest.approx(c.summary.top_p_rms, rel=1e-3)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_baseline_cache_is_recomputed(
    default_model_path: Path, eval_cache: Path, write_suite: WriteSuite, damage: str
) -> None:
    suite = write_suite()
    first = run_eval(default_model_path, default_model_path, suite=suite)
    (path,) = (eval_cache / "eval").glob("drift-*.bin")
    good = path.read_bytes()
    bad = (
        good[: len(good) - 100]
        if damage == "truncate"
        else good[:-50] + bytes([good[-50] ^ 0xFF]) + good[-49:]
    )
    path.write_bytes(bad)
    again = run_eval(default_model_path, default_model_path, suite=suite)
    (s,) = again.slices
    reason = "truncated" if damage == "truncate" else "checksum mismatch"
    assert s.baseline_cache.startswith(f"recomputed ({reason}") and s.kld_method == "exact"
    assert path.read_bytes() == good  # recomputed and written back, identical
    assert s.summary.mean_kld == first.slices[0].summary.mean_kld == 0.0


# --- bad input --------------------------------------------------------------------------------------


def test_tokenizer_mismatch_is_an_input_error(default_model_path: Path, write_suite: WriteSuite) -> None:
    suite = write_suite()
    proc = edgekit(
        "eval", "-b", str(default_model_path), "-c", "qwen2.5-coder-0.5b-instruct", "--suite", str(suite)
    )
    assert_one_line_error(proc, 2, "tokenize slice 'prose' differently", "first difference at token")


def test_too_short_text_is_an_input_error(
    default_model_path: Path, eval_cache: Path, write_suite: WriteSuite
) -> None:
    suite = write_suite({"tiny": "Just a few words here."})
    with pytest.raises(InputError, match=r"slice 'tiny' is \d+ tokens long; at least 32"):
        run_eval(default_model_path, default_model_path, suite=suite)


def test_empty_text_is_an_input_error(default_model_path: Path, write_suite: WriteSuite) -> None:
    suite = write_suite({"blank": " \n\n "})
    proc = edgekit(
        "eval", "-b", str(default_model_path), "-c", str(default_model_path), "--suite", str(suite)
    )
    assert_one_line_error(proc, 2, "the text of slice 'blank' is empty")


def test_missing_models_are_input_errors(default_model_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    proc = edgekit("eval", "-b", str(default_model_path), "-c", str(missing))
    assert_one_line_error(proc, 2, "candidate: ", "no such file or folder")
    with pytest.raises(UnknownModelError, match=r"^baseline: unknown model 'smollm3'"):
        run_eval("smollm3", default_model_path)


def test_candidate_that_fails_to_load(
    default_model_path: Path, tmp_path: Path, write_suite: WriteSuite
) -> None:
    truncated = tmp_path / "truncated.gguf"
    with default_model_path.open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(40_000_000))
    with pytest.raises(ModelFileError, match=r"^candidate: .*truncated GGUF"):
        run_eval(default_model_path, truncated, suite=write_suite())
    proc = edgekit("eval", "-b", str(default_model_path), "-c", str(truncated), "--suite", str(write_suite()))
    assert_one_line_error(proc, 2, "candidate: ", "truncated GGUF")


def test_bad_suite_is_reported_with_file_line_and_key(
    default_model_path: Path, write_suite: WriteSuite
) -> None:
    suite = write_suite(gates="min_top1 = 1.5")
    proc = edgekit(
        "eval", "-b", str(default_model_path), "-c", str(default_model_path), "--suite", str(suite)
    )
    assert_one_line_error(proc, 2, f"{suite}:", "gates.min_top1", "less than or equal to 1", "1.5")
    with pytest.raises(SuiteError, match=r"slices\.prose\.gates\.max_mean_kl: unknown key .*'max_mean_kld'"):
        load_suite(write_suite(extra="[slices.prose.gates]\nmax_mean_kl = 0.1"))


# --- the shipped suite ------------------------------------------------------------------------------


def test_default_suite_is_about_4096_tokens_of_five_slices(default_model: object) -> None:
    from edgekit.api import Model

    assert isinstance(default_model, Model)
    suite = load_suite()
    assert [s.name for s in suite.slices] == ["prose", "code", "structured", "multilingual", "long_context"]
    tokenizer = default_model.backend
    counts = {s.name: len(tokenizer.text_tokens(s.text)[1]) for s in suite.slices}  # type: ignore[attr-defined]
    assert all(n >= suite.min_tokens * 4 for n in counts.values()), counts
    assert 3800 <= sum(counts.values()) <= 4400, counts
    assert suite.tasks is not None and {t.group for t in suite.tasks.tasks} == {
        "json",
        "refuse",
        "comply",
        "qa",
    }
    assert all(
        6 <= sum(t.group == g for t in suite.tasks.tasks) <= 10 for g in ("json", "refuse", "comply", "qa")
    )
