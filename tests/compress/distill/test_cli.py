"""edgekit distill as a user runs it: a real process, exit codes, one-line errors, a remote generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.models.lock import Lockfile
from tests.cli.test_cli import assert_clean_error, edgekit
from tests.servers import llama_server

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_bad_layer_counts_are_usage_errors(default_hf: Path, tmp_path: Path) -> None:
    proc = edgekit("distill", str(default_hf), "--drop-layers", "-1", "--out", str(tmp_path / "s"))
    assert_clean_error(proc, 2, "negative")
    proc = edgekit("distill", str(default_hf), "--drop-layers", "30", "--out", str(tmp_path / "s"))
    assert_clean_error(proc, 2, "all 30 layers")
    assert list(tmp_path.iterdir()) == []


def test_sequence_distillation_from_a_remote_generator_is_recorded(
    default_hf: Path, default_model_path: Path, isolated: Path
) -> None:
    prompts = isolated / "prompts.txt"
    prompts.write_text("Say hello.\nName a fruit.\n", encoding="utf-8")
    out = isolated / "tiny-student"
    with llama_server(default_model_path, isolated) as server:
        proc = edgekit(
            "distill", str(default_hf), "--drop-layers", "4", "--mode", "sequence",
            "--generator", server.base_url, "--generator-model", server.model_id, "--prompts", str(prompts),
            "--answer-tokens", "6", "--steps", "1", "--seq-len", "64", "--batch-size", "2",
            "--out", str(out), "--json",
            env={"EDGEKIT_REMOTE_API_KEY": server.api_key, "EDGEKIT_THREADS": "1"},
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["layers"] == [30, 26] and result["lock_name"] == "tiny-student"
    entry = Lockfile.load(isolated / "models.lock").get("tiny-student")
    assert entry.format == "hf" and entry.provenance
    assert entry.provenance["settings"]["generator"] == server.base_url
    assert entry.provenance["settings"]["data_sha256"] == result["data_sha256"]
    answers = json.loads((isolated / "tiny-student.ckpt" / "answers.json").read_text())
    assert len(answers["answers"]) == 2 and all(a.strip() for a in answers["answers"])
