"""The CLI as a user runs it: a real process, the real default model, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]


def edgekit(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_run_prints_the_answer(default_model_path: Path) -> None:
    proc = edgekit("run", "Which city is the capital of France?", "--temperature", "0", "--max-tokens", "20")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_run_json_and_stdin(default_model_path: Path) -> None:
    proc = edgekit(
        "run",
        "-",
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--seed",
        "1",
        "--system",
        "Answer briefly.",
        stdin=b"Which city is the capital of France?",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "smollm2-135m-instruct" and data["backend"] == "llama.cpp"
    assert data["usage"]["completion_tokens"] <= 8 and data["usage"]["prompt_tokens"] > 0
    assert set(data["timings"]) == {"ttft_s", "total_s", "tokens_per_s"}
    assert 0 < data["confidence"]["mean_prob"] <= 1


def test_input_errors_exit_2_with_one_line(default_model_path: Path) -> None:
    assert_clean_error(edgekit("run", "  "), 2, "empty")
    assert_clean_error(edgekit("run", "-", stdin=b"caf\xe9 au lait"), 2, "UTF-8")
    assert_clean_error(
        edgekit("run", "hi", "--model", "smollm2"), 2, "unknown model", "smollm2-135m-instruct"
    )
    assert_clean_error(edgekit("run", "word " * 3000, "--n-ctx", "512"), 2, "context window is 512")
    assert_clean_error(edgekit("run", "hi", "--max-tokens", "0"), 2, "max_tokens")
    usage = edgekit("run", "hi", "--no-such-flag")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_model_file_errors(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    assert_clean_error(edgekit("run", "hi", "--model", str(fake)), 2, "not a GGUF")
    assert_clean_error(edgekit("run", "hi", "--model", str(tmp_path / "missing.gguf")), 2, "no such file")


def test_malformed_lock_and_debug_traceback(tmp_path: Path) -> None:
    lock = tmp_path / "models.lock"
    lock.write_text('version = 1\ndefault = "x"\n\n[models.x]\nformat = "gguf"\nsize = "big"\n')
    env = {"EDGEKIT_LOCK": str(lock)}
    assert_clean_error(edgekit("models", "list", env=env), 2, f"{lock}:", "models.x")
    debug = edgekit("models", "list", env={**env, "EDGEKIT_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_chat_is_scriptable_with_slash_commands(default_model_path: Path) -> None:
    script = (
        "\n".join(
            [
                "/help",
                "Which city is the capital of France?",
                "/system You answer in one short sentence.",
                "/system",
                "/show",
                "/reset",
                "/model nonexistent-model",
                "/frobnicate",
                "What is 2+2?",
                "/exit",
                "this line is never read",
            ]
        )
        + "\n"
    )
    proc = edgekit("chat", "--temperature", "0", "--max-tokens", "24", stdin=script.encode())
    assert proc.returncode == 0, proc.stderr
    assert (
        "/reset" in proc.stdout
        and "(system prompt set)" in proc.stdout
        and "(conversation cleared)" in proc.stdout
    )
    assert "(system prompt: 'You answer in one short sentence.')" in proc.stdout  # /system alone shows it
    assert "model: smollm2-135m-instruct" in proc.stdout and "temperature=0.0" in proc.stdout  # /show
    assert "Paris" in proc.stdout
    after = proc.stdout.split("(conversation cleared)", 1)[1]
    assert len(after.strip()) > 10, "the session answers after /reset, /model errors and unknown commands"
    assert "unknown model 'nonexistent-model'" in proc.stderr and "unknown command /frobnicate" in proc.stderr


def test_models_list_pull_verify(default_model_path: Path) -> None:
    pulled = edgekit("pull")
    assert pulled.returncode == 0 and pulled.stdout.strip() == str(default_model_path)
    listed = json.loads(edgekit("models", "list", "--json").stdout)
    default = next(m for m in listed if m["default"])
    assert default["name"] == "smollm2-135m-instruct" and default["cached"] and default["verified"]
    assert {m["name"] for m in listed} >= {"qwen2.5-coder-0.5b-instruct", "all-minilm-l6-v2"}
    verified = edgekit("models", "verify", "smollm2-135m-instruct")
    assert verified.returncode == 0 and "ok" in verified.stdout
    for columns in ("40", "80", "200"):  # names are never cut, in a pipe as on any terminal width
        table = edgekit("models", "list", env={"COLUMNS": columns}).stdout
        assert all(m["name"] in table for m in listed), (columns, table)
        assert "…" not in table


def test_version_and_short_help() -> None:
    from edgekit import __version__

    assert edgekit("--version").stdout.strip() == edgekit("-V").stdout.strip() == f"edgekit {__version__}"
    assert "Usage: edgekit" in edgekit("-h").stdout and "Usage: edgekit run" in edgekit("run", "-h").stdout


def test_hash_mismatch_is_refused_and_verify_fails(default_model_path: Path, isolated: Path) -> None:
    """A cached file that changed after its pull: load refuses it, verify exits 1."""
    env = {
        "EDGEKIT_CACHE_DIR": os.environ["EDGEKIT_CACHE_DIR"],
        "EDGEKIT_LOCK": os.environ["EDGEKIT_LOCK"],
        "EDGEKIT_OFFLINE": "1",
    }
    from edgekit.models.store import ModelStore

    store = ModelStore()
    target = store.path_for(store.lock.get())
    target.parent.mkdir(parents=True)
    data = bytearray(default_model_path.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    assert_clean_error(edgekit("run", "hi", env=env), 3, "sha256", "pull")
    bad = edgekit("models", "verify", env=env)
    assert bad.returncode == 1 and "FAILED" in bad.stderr
    assert_clean_error(edgekit("models", "verify", store.lock.get().name, env=env), 1, "sha256", "pull")


def test_offline_names_what_is_missing(isolated: Path) -> None:
    env = {
        "EDGEKIT_CACHE_DIR": os.environ["EDGEKIT_CACHE_DIR"],
        "EDGEKIT_LOCK": os.environ["EDGEKIT_LOCK"],
        "EDGEKIT_OFFLINE": "1",
    }
    assert_clean_error(edgekit("run", "hi", env=env), 3, "smollm2-135m-instruct", "EDGEKIT_OFFLINE")


def test_models_add_pins_a_local_file(default_model_path: Path, isolated: Path) -> None:
    env = {"EDGEKIT_CACHE_DIR": os.environ["EDGEKIT_CACHE_DIR"], "EDGEKIT_LOCK": os.environ["EDGEKIT_LOCK"]}
    local = isolated / "mine.gguf"
    local.symlink_to(default_model_path)
    added = edgekit("models", "add", str(local), "--name", "mine", "--license", "Apache-2.0", env=env)
    assert added.returncode == 0, added.stderr
    text = (isolated / "models.lock").read_text()
    assert "# edgekit models.lock" in text, "comments survive the edit"
    assert "[models.mine]" in text and 'kind = "file"' in text
    again = edgekit("models", "add", str(local), "--name", "mine", env=env)
    assert_clean_error(again, 2, "already has an entry")
    ran = edgekit(
        "run",
        "Which city is the capital of France?",
        "--model",
        "mine",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
        env=env,
    )
    assert ran.returncode == 0 and "Paris" in ran.stdout


def test_models_show_and_rm(default_model_path: Path, isolated: Path) -> None:
    env = {"EDGEKIT_CACHE_DIR": os.environ["EDGEKIT_CACHE_DIR"], "EDGEKIT_LOCK": os.environ["EDGEKIT_LOCK"]}
    local = isolated / "mine.gguf"
    local.symlink_to(default_model_path)
    assert (
        edgekit("models", "add", str(local), "--name", "mine", "--license", "Apache-2.0", env=env).returncode
        == 0
    )
    shown = edgekit("models", "show", "mine", "--json", env=env)
    info = json.loads(shown.stdout)
    assert info["license"] == "Apache-2.0" and info["cached"] and info["source"]["kind"] == "file"
    assert info["gguf"]["chat_template"] and info["gguf"]["context_length"] == 8192
    assert "context_length=8192" in edgekit("models", "show", "mine", env=env).stdout
    assert_clean_error(edgekit("models", "rm", "mine", env=env), 2, "without confirmation", "--yes")
    removed = edgekit("models", "rm", "mine", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "kept" in removed.stdout and "removed mine from models.lock" in removed.stdout
    assert local.exists() and "[models.mine]" not in (isolated / "models.lock").read_text()
    assert_clean_error(edgekit("models", "show", "mine", env=env), 2, "unknown model 'mine'")


def test_bench_reports_ratios_against_raw_llama_cpp(default_model_path: Path) -> None:
    proc = edgekit("bench", "--json", "--runs", "1", "--rounds", "1", "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["raw"]["side"] == "raw" and report["edgekit"]["side"] == "edgekit"
    for side in ("raw", "edgekit"):
        assert report[side]["gen_tok_s"] > 0 and report[side]["prompt_tokens"] > 10
        assert report[side]["peak_rss_mb"] > report["model_size_mb"] * 0.5
    assert report["gen_ratio"] > 0 and report["same_output"] is True


def test_ctrl_c_stops_the_answer_but_not_the_session(default_model_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", "chat", "--temperature", "0", "--max-tokens", "400"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(b"Write a very long story about a dragon and a knight.\n")
        proc.stdin.flush()
        assert proc.stdout.read(40), "the answer starts streaming"
        proc.send_signal(signal.SIGINT)
        proc.stdin.write(b"Which city is the capital of France?\n/exit\n")
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    assert proc.returncode == 0
    assert b"[stopped]" in out and b"Paris" in out.split(b"[stopped]", 1)[1]


def test_run_on_an_onnx_folder(tmp_path: Path) -> None:
    from tests.runtime.onnx_fixture import build_tiny_lm

    folder = build_tiny_lm(tmp_path / "tiny-onnx")
    proc = edgekit("run", "hello there", "--model", str(folder), "--json", "--max-tokens", "5", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["backend"] == "onnxruntime" and data["usage"]["completion_tokens"] == 5
    assert data["finish_reason"] == "length"


@pytest.mark.parametrize("after_s", [0.0, 0.1, 0.3])
def test_ctrl_c_while_starting_up_is_one_line(after_s: float) -> None:
    """An interrupt while the commands are still being imported exits 130 without a traceback. The child
    says when edgekit's entry point is about to run (what ``python -m edgekit`` calls), and the interrupt
    comes ``after_s`` later: a fixed delay from the spawn would, on a loaded machine, land before Python
    has even set its own SIGINT handler (killed by the signal, before any edgekit code runs)."""
    entry = "from edgekit.cli import main; print('up', flush=True); main(['models', 'list'])"
    proc = subprocess.Popen(
        [sys.executable, "-c", entry],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr
    assert proc.returncode in (0, 130), (proc.returncode, stderr)  # 0: it had finished already


def test_bench_contended_runs_idle_and_beside_a_busy_neighbour(default_model_path: Path) -> None:
    proc = edgekit("bench", "--contended", "--json", "--runs", "1", "--rounds", "1", "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["idle"]["contended"], report["contended"]["contended"]) == (False, True)
    for run in report.values():
        assert run["edgekit"]["gen_tok_s"] > 0 and run["raw"]["gen_tok_s"] > 0
        assert run["same_output"] is True  # whatever thread count edgekit picked
    assert report["idle"]["adaptive"] is ("EDGEKIT_THREADS" not in os.environ)
