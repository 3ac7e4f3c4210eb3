"""Write small GGUF files byte by byte, recording where each count and type field sits (for mutating them).

``small_model()`` is a complete, tiny llama-architecture GGUF (2 blocks, a 4-token BPE vocabulary, F32 and
Q8_0 tensors with their data) that both read_gguf and the llama.cpp field checks accept.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
F32_T, Q8_0_T = 0, 8
_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q"}
_FMT[F64] = "d"


@dataclass
class GGUFBytes:
    """A GGUF under construction: ``counts`` and ``types`` are the offsets of every u64 length/count and
    every u32 type field written so far."""

    buf: bytearray = field(default_factory=bytearray)
    counts: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    header_end: int = 0

    def raw(self, b: bytes) -> None:
        self.buf += b

    def count(self, n: int) -> None:
        self.counts.append(len(self.buf))
        self.buf += struct.pack("<Q", n)

    def vtype(self, t: int) -> None:
        self.types.append(len(self.buf))
        self.buf += struct.pack("<I", t)

    def string(self, s: str | bytes) -> None:
        b = s.encode() if isinstance(s, str) else s
        self.count(len(b))
        self.buf += b

    def value(self, vtype: int, v: object) -> None:
        if vtype == STRING:
            self.string(v)  # type: ignore[arg-type]
        elif vtype == ARRAY:
            item, items = v  # type: ignore[misc]
            self.vtype(item)
            self.count(len(items))
            for x in items:
                self.value(item, x)
        else:
            self.buf += struct.pack("<" + _FMT[vtype], v)

    def kv(self, key: str, vtype: int, v: object) -> None:
        self.string(key)
        self.vtype(vtype)
        if isinstance(v, Raw):
            self.raw(v.payload)
        else:
            self.value(vtype, v)


@dataclass(frozen=True)
class Raw:
    """A value given as its encoded bytes (for values the recursive writer would not survive)."""

    payload: bytes


def gguf(
    kvs: list[tuple[str, int, object]],
    tensors: Sequence[tuple[str, tuple[int, ...], int, bytes]] = (),
    *,
    align: int = 32,
    version: int = 3,
) -> GGUFBytes:
    """A GGUF with these (key, type, value) pairs and (name, dims, ggml type, data) tensors, laid out as
    llama.cpp expects: tensor data after the header, each tensor aligned."""
    g = GGUFBytes()
    g.raw(b"GGUF" + struct.pack("<I", version))
    g.count(len(tensors))
    g.count(len(kvs))
    for key, vtype, v in kvs:
        g.kv(key, vtype, v)
    offset, blobs = 0, []
    for name, dims, ttype, data in tensors:
        g.string(name)
        g.raw(struct.pack("<I", len(dims)))
        for d in dims:
            g.count(d)
        g.vtype(ttype)
        g.raw(struct.pack("<Q", offset))
        pad = -len(data) % align if len(blobs) < len(tensors) - 1 else 0  # no padding after the last
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    g.raw(b"\0" * (-len(g.buf) % align))
    g.header_end = len(g.buf)
    for blob in blobs:
        g.raw(blob)
    return g


def nested_array(depth: int) -> Raw:
    """The payload of an ARRAY value ``depth`` arrays deep: an array of an array of ... of one uint8."""
    return Raw(struct.pack("<IQ", ARRAY, 1) * (depth - 1) + struct.pack("<IQB", U8, 1, 1))


def f32(n: int) -> bytes:
    return struct.pack(f"<{n}f", *([0.5] * n))


def q8_0(n: int) -> bytes:
    return (struct.pack("<e", 0.1) + bytes(32)) * (n // 32)


N_EMBD = 64
TOKENS = ["a", "b", "c", "ab"]


def model_kvs(**override: tuple[int, object] | None) -> list[tuple[str, int, object]]:
    """The small model's metadata; ``override`` replaces (key with '.' as '__') or, with None, drops keys."""
    kvs: dict[str, tuple[int, object]] = {
        "general.architecture": (STRING, "llama"),
        "general.name": (STRING, "tiny"),
        "llama.block_count": (U32, 2),
        "llama.context_length": (U32, 128),
        "llama.embedding_length": (U32, N_EMBD),
        "llama.feed_forward_length": (U32, 128),
        "llama.attention.head_count": (U32, 4),
        "llama.attention.head_count_kv": (U32, 2),
        "llama.rope.freq_base": (F32, 10000.0),
        "general.alignment": (U32, 32),
        "tokenizer.ggml.model": (STRING, "gpt2"),
        "tokenizer.ggml.tokens": (ARRAY, (STRING, TOKENS)),
        "tokenizer.ggml.token_type": (ARRAY, (I32, [1] * len(TOKENS))),
        "tokenizer.ggml.merges": (ARRAY, (STRING, ["a b"])),
        "tokenizer.ggml.bos_token_id": (U32, 0),
        "tokenizer.chat_template": (STRING, "{{ messages }}"),
    }
    for name, v in override.items():
        key = name.replace("__", ".")
        if v is None:
            kvs.pop(key, None)
        else:
            kvs[key] = v
    return [(k, t, v) for k, (t, v) in kvs.items()]


def model_tensors(n_blocks: int = 2) -> list[tuple[str, tuple[int, ...], int, bytes]]:
    tensors = [("token_embd.weight", (N_EMBD, len(TOKENS)), F32_T, f32(N_EMBD * len(TOKENS)))]
    for i in range(n_blocks):
        tensors.append((f"blk.{i}.attn_norm.weight", (N_EMBD,), F32_T, f32(N_EMBD)))
    tensors.append(("output_norm.weight", (N_EMBD,), Q8_0_T, q8_0(N_EMBD)))
    return tensors


def small_model(n_blocks: int = 2, **override: tuple[int, object] | None) -> GGUFBytes:
    return gguf(model_kvs(**override), model_tensors(n_blocks))
