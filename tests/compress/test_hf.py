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


def test_dequantized_tokenizer_splits_like_the_gguf(default_hf: Path, default_model_path: Path) -> None:
    """The folder's tokenizer.json must tokenize as llama.cpp does with the GGUF: the SmolLM2
    pre-tokenizer splits digits first (transformers' GGUF reader gives plain GPT-2 splitting, which
    differed on "\\n\\n2024"), adds no BOS, and names <|im_end|> as EOS."""
    import llama_cpp
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(default_hf / "tokenizer.json"))
    gguf = llama_cpp.Llama(str(default_model_path), vocab_only=True, verbose=False)
    texts = [
        "Released 2024-03-01.\n\n2024 was a leap year; 3.14159 is pi.",
        '{"id": 1182, "items": ["mug", "lamp"], "total": 34.50}\n\n12:30',
        "  indented  text\twith\ttabs, émojis 🙂 and 日本語のテキスト",
    ]
    try:
        for text in texts:
            want = gguf.tokenize(text.encode(), add_bos=False, special=False)
            assert hf.encode(text, add_special_tokens=True).ids == want, text
    finally:
        gguf.close()
    config = json.loads((default_hf / "tokenizer_config.json").read_text())
    assert config["add_bos_token"] is False and config["eos_token"] == "<|im_end|>"
    assert hf.decode(hf.encode("a  b\n\n c").ids) == "a  b\n\n c"


def test_dequantizing_prints_nothing_and_leaves_transformers_settings(
    tmp_path: Path, default_model_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as tf_logging

    before = (tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled())
    gguf_to_hf(default_model_path, tmp_path / "hf")
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), err[-500:]  # no legacy-tokenizer notice, no de-quantizing bar
    assert (tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()) == before
