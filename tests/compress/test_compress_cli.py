"""`edgekit compress` end to end, as a user runs it: a real process, the real default model, the real
quantizer and the real eval gate on a small suite (one slice of held-out text, no tasks, no timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit
from edgekit.models.lock import Lockfile
from edgekit.runtime.gguf import read_gguf

pytestmark = [pytest.mark.model, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def edgekit_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGEKIT_THREADS": "1", **env},
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path: Path, default_model_path: Path) -> tuple[Path, dict[str, str]]:
    """A project folder with its own models.lock (the model cache stays the shared one) and a small suite."""
    lock = tmp_path / "models.lock"
    lock.write_text((ROOT / "models.lock").read_text())
    prose = (ROOT / "recipes" / "data" / "eval" / "prose.txt").read_text()
    (tmp_path / "prose.txt").write_text(prose[:2500])
    (tmp_path / "suite.toml").write_text(
        "version = 1\n[drift]\nchunk_tokens = 256\n[slices.prose]\nfile = 'prose.txt'\n"
        "[tasks]\nenabled = false\n[speed]\nruns = 0\n[gates]\nmax_mean_kld = 0.05\nmin_top1 = 0.85\n"
    )
    return tmp_path, {"EDGEKIT_LOCK": str(lock)}


def recipe(folder: Path, name: str, qtype: str, gates: str = "") -> Path:
    suite = "suite.toml"
    if gates:
        (folder / "tight.toml").write_text(
            (folder / "suite.toml").read_text().split("[gates]")[0] + f"[gates]\n{gates}\n"
        )
        suite = "tight.toml"
    path = folder / f"{name}.toml"
    path.write_text(
        f"""version = 1
[source]
model = "smollm2-135m-instruct"
allow_requantize = true
[[targets]]
name = "{name}"
format = "gguf"
type = "{qtype}"
[eval]
suite = "{suite}"
[output]
dir = "out"
"""
    )
    return path


def test_q8_0_builds_pins_passes_its_gate_and_is_skipped_the_second_time(
    workdir: tuple[Path, dict[str, str]],
) -> None:
    folder, env = workdir
    path = recipe(folder, "smol-q8", "Q8_0")
    first = edgekit_cli("compress", str(path), env=env)
    assert first.returncode == 0, first.stderr
    assert "[1/2] target:smol-q8: running" in first.stderr
    assert "eval smol-q8 against smollm2-135m-instruct: PASS" in first.stdout
    assert "drift.all.max_mean_kld" in first.stdout

    out = folder / "out" / "smol-q8.gguf"
    entry = Lockfile.load(folder / "models.lock").get("smol-q8")
    prov = entry.provenance or {}
    recipe_sha = prov["recipe_sha256"]
    assert len(recipe_sha) == 64 and prov["quant_type"] == "Q8_0"
    assert prov["source_sha256"] == Lockfile.load(ROOT / "models.lock").get().sha256
    meta = read_gguf(out).metadata
    assert meta["edgekit.provenance.recipe_sha256"] == recipe_sha
    assert meta["general.file_type"] == 7  # Q8_0
    with edgekit.load(out, n_ctx=256, threads=1) as model:
        assert model.chat("Say hi.", max_tokens=4, temperature=0).usage.completion_tokens > 0

    second = edgekit_cli("compress", str(path), env=env)
    assert second.returncode == 0, second.stderr
    assert "[1/2] target:smol-q8: up to date, skipped" in second.stderr
    assert "[2/2] eval:smol-q8: up to date, skipped" in second.stderr
    assert "0 ran, 2 up to date" in second.stdout
    dry = edgekit_cli("compress", str(path), "--dry-run", env=env)
    assert dry.returncode == 0 and "0 of 2 steps would run" in dry.stdout


def test_q4_0_fails_a_tight_gate_with_exit_1_and_the_gate_table(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    path = recipe(folder, "smol-q4-0", "Q4_0", gates="max_mean_kld = 0.02\nmin_top1 = 0.95")
    proc = edgekit_cli("compress", str(path), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: eval gate failed: smol-q4-0: drift.") and "(hint: " in last
    assert "FAIL" in proc.stdout and "drift.all.max_mean_kld" in proc.stdout and "over by" in proc.stdout
    assert (folder / "out" / "smol-q4-0.gguf").is_file()  # built and pinned; the verdict is the gate's
    assert Lockfile.load(folder / "models.lock").get("smol-q4-0").sha256


def test_bad_recipe_is_a_one_line_input_error(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('version = 1\n[source]\nmodel = "smollm2-135m-instruct"\n[[target]]\nname = "x"\n')
    proc = edgekit_cli("compress", str(path), "--dry-run", env={})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:4: target: unknown key"), proc.stderr
    assert "Did you mean 'targets'?" in lines[0]
