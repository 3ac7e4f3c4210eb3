"""GGUF -> Hugging Face folder: the source every compression test starts from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.compress.hf import gguf_to_hf
from edgekit.errors import ModelFileError

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_default_model_dequantizes_to_a_loadable_folder(default_hf: Path) -> None:
    from transformers import AutoTokenizer

    config = json.loads((default_hf / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (default_hf / "model.safetensors").stat().st_size > 100_000_000
    tok = AutoTokenizer.from_pretrained(default_hf)
    assert tok.decode(tok("Hello world").input_ids, skip_special_tokens=True) == "Hello world"


def test_truncated_gguf_fails_cleanly(tmp_path: Path, default_model_path: Path) -> None:
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(default_model_path.read_bytes()[:4096])
    out = tmp_path / "hf"
    with pytest.raises(ModelFileError):
        gguf_to_hf(bad, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cut.gguf"]
