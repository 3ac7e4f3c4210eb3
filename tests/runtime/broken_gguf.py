"""Build a GGUF whose tokenizer kills any process that tokenizes ordinary text with it.

The file is a vocabulary-only copy of a real byte-level BPE model (all of its metadata, none of its
tensors; llama.cpp loads it with ``vocab_only=True``) whose ``tokenizer.ggml.model`` is changed from
"gpt2" to "llama" -- the mislabel a bad HF -> GGUF conversion produces when it files a BPE tokenizer
as SentencePiece. llama.cpp then tokenizes with its SentencePiece code, which writes spaces as "▁"
(U+2581). A byte-level BPE vocabulary has no "▁" and none of the "<0xNN>" byte tokens SentencePiece
falls back to, so byte fallback (``llama_vocab::byte_to_token``) ends in ``token_to_id.at(...)`` on a
missing key: ``std::out_of_range`` ("unordered_map::at") escapes ``llama_tokenize`` and
``std::terminate`` aborts the process (SIGABRT) on the first space in "Hello world".

Corrupting the BPE vocabulary itself (renaming "Ġ" or the single-byte tokens, or breaking the merges)
is not enough: llama.cpp's BPE path skips symbols it cannot find and only returns wrong tokens.
"""

from __future__ import annotations

import struct
from pathlib import Path

import gguf


def copy_gguf(
    src: Path,
    dst: Path,
    *,
    set_keys: dict[str, str] | None = None,
    drop_keys: frozenset[str] = frozenset(),
    tensors: bool = True,
) -> Path:
    """Copy a GGUF, replacing string metadata values, dropping keys, and with or without its tensors."""
    set_keys = set_keys or {}
    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)  # writes general.architecture itself
    try:
        for name, field in reader.fields.items():
            if name.startswith("GGUF.") or name == "general.architecture" or name in drop_keys:
                continue  # the file header is rebuilt by the writer
            vtype = field.types[0]
            value = set_keys.get(name, field.contents())
            sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, value, vtype, sub_type=sub_type)
        if tensors:
            for t in reader.tensors:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        if tensors:
            for t in reader.tensors:
                writer.write_tensor_data(t.data)
    finally:
        writer.close()
    return dst


def write_broken_tokenizer_gguf(src: Path, dst: Path) -> Path:
    """Write to ``dst`` a vocabulary-only copy of the gpt2-tokenizer GGUF ``src``, labelled SentencePiece."""
    reader = gguf.GGUFReader(src)
    if reader.fields["tokenizer.ggml.model"].contents() != "gpt2":
        raise ValueError(f"{src}: expected a gpt2 (byte-level BPE) tokenizer")
    return copy_gguf(src, dst, set_keys={"tokenizer.ggml.model": "llama"}, tensors=False)


def write_base_model_gguf(src: Path, dst: Path) -> Path:
    """The same model with no chat template, as base (completion-only) models ship."""
    return copy_gguf(src, dst, drop_keys=frozenset({"tokenizer.chat_template"}))


def write_with_uint32(src: Path, dst: Path, key: str, value: int) -> Path:
    """A byte-for-byte copy of ``src`` whose uint32 field ``key`` holds ``value`` (weights and all)."""
    data = bytearray(src.read_bytes())
    k = key.encode()
    at = data.index(struct.pack("<Q", len(k)) + k + struct.pack("<I", 4)) + 8 + len(k) + 4
    data[at : at + 4] = struct.pack("<I", value)
    dst.write_bytes(data)
    return dst
