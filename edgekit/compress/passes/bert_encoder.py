"""A Hugging Face BERT sentence encoder (safetensors) -> int8 ONNX feature extractor, torch-free.

The input is a model folder: ``config.json`` (``model_type`` bert, GELU, absolute positions),
``model.safetensors`` (float32, float16 or bfloat16; read here with numpy, no torch or safetensors
package), ``tokenizer.json`` and, when it is a sentence-transformers folder, ``sentence_bert_config.json``
(its ``max_seq_length`` caps the tokens read) and ``1_Pooling/config.json`` (only mean pooling is taken).
The graph is ``edgekit.compress.bert_onnx``'s: word embeddings stay float32, linear layers int8. The bytes
are a pure function of the folder, so the build's manifest hash is pinned in models.lock
(``all-minilm-l6-v2-onnx`` is this pass on ``all-minilm-l6-v2``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.compress.bert_onnx import (
    BertConfig,
    BertWeights,
    build_graph,
    encoder_folder,
    smoothing,
)
from edgekit.errors import ModelFileError
from edgekit.files import ProgressFn, no_progress

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext

ROLES = ("model",)
"""The build input of this pass (the key of a models.lock ``source.inputs`` table)."""
DEFAULT_MAX_TOKENS = 256
_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}
_HF = {  # our weight names -> the transformers BertModel's, per layer after "encoder.layer.{i}."
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


def _bad(folder: Path, message: str) -> ModelFileError:
    hint = f"Pull the model folder again ('edgekit pull NAME --force'), or check {folder} is a BERT encoder."
    return ModelFileError(message, hint)


def read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _bad(folder, f"{path}: not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise _bad(folder, f"{path}: expected a JSON object")
    return value


def bert_config(folder: Path) -> BertConfig:
    """The architecture from ``config.json``; anything this graph does not compute is refused."""
    raw = read_json(folder / "config.json", folder)
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    wrong = [f"{key} {raw.get(key)!r}" for key, want in expected.items() if raw.get(key, want) != want]
    if wrong:
        raise _bad(folder, f"{folder}: not a BERT encoder this build computes ({', '.join(wrong)})")
    try:
        c = BertConfig(
            hidden=int(raw["hidden_size"]),
            layers=int(raw["num_hidden_layers"]),
            heads=int(raw["num_attention_heads"]),
            ffn=int(raw["intermediate_size"]),
            vocab=int(raw["vocab_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            type_vocab=int(raw.get("type_vocab_size", 2)),
            eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(folder, f"{folder}/config.json: missing or bad field {e}") from None
    sizes = (c.hidden, c.layers, c.heads, c.ffn, c.vocab, c.max_positions, c.type_vocab)
    if min(sizes) <= 0 or c.hidden % c.heads:
        raise _bad(folder, f"{folder}/config.json: inconsistent sizes")
    return c


def read_safetensors(path: Path, folder: Path) -> dict[str, np.ndarray]:
    """Every float tensor of a safetensors file, as float32 arrays (header: u64 length, then JSON)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _bad(folder, f"{path}: cannot read the weights ({e.strerror})") from None
    try:
        (n,) = struct.unpack_from("<Q", data)
        header = json.loads(data[8 : 8 + n]) if 8 + n <= len(data) else None
    except (struct.error, ValueError):
        header = None
    if not isinstance(header, dict):
        raise _bad(folder, f"{path}: not a safetensors file")
    body, out = memoryview(data)[8 + n :], {}
    for name, meta in header.items():
        if name == "__metadata__" or meta.get("dtype") not in _DTYPES:
            continue
        start, end = meta["data_offsets"]
        shape = tuple(meta["shape"])
        if end > len(body) or end - start != int(np.prod(shape)) * (4 if meta["dtype"] == "F32" else 2):
            raise _bad(folder, f"{path}: tensor {name} ends past the end of the file")
        raw = np.frombuffer(body[start:end], _DTYPES[meta["dtype"]]).reshape(shape)
        if meta["dtype"] == "BF16":  # the high half of a float32
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.astype(np.float32)
    return out


def read_bert(folder: Path) -> BertWeights:
    """The encoder's weights under our names, with every shape checked against ``config.json``."""
    folder = Path(folder)
    config = bert_config(folder)
    tensors = read_safetensors(folder / "model.safetensors", folder)
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
    hf = {ours: prefix + theirs for ours, theirs in _EMBEDDINGS.items()}
    for layer in range(config.layers):
        for short, theirs in _HF.items():
            base = f"{prefix}encoder.layer.{layer}.{theirs}"
            hf[f"l{layer}.{short}.w"] = base + ".weight"
            hf[f"l{layer}.{short}.b"] = base + ".bias"
    shapes, sizes = config.shapes()
    matrices: dict[str, np.ndarray] = {}
    f32: dict[str, np.ndarray] = {}
    for ours, theirs in hf.items():
        if theirs not in tensors:
            raise _bad(folder, f"{folder}: model.safetensors has no tensor {theirs}")
        t = tensors[theirs]
        if ours in shapes:
            if t.shape != shapes[ours]:
                raise _bad(folder, f"{folder}: tensor {theirs} is {t.shape}, expected {shapes[ours]}")
            matrices[ours] = t
        else:
            if t.size != sizes[ours]:
                raise _bad(folder, f"{folder}: tensor {theirs} has {t.size} values, expected {sizes[ours]}")
            f32[ours] = t.reshape(-1)
    if not all(np.isfinite(t).all() for t in (*matrices.values(), *f32.values())):
        raise _bad(folder, f"{folder}: the weights hold NaN or infinite values")
    return BertWeights(config, matrices, f32)


def max_tokens(folder: Path, config: BertConfig) -> int:
    """sentence-transformers' ``max_seq_length`` when the folder has one, else 256; never past positions."""
    st = folder / "sentence_bert_config.json"
    st_config = read_json(st, folder) if st.is_file() else {}
    wanted = st_config.get("max_seq_length", DEFAULT_MAX_TOKENS)
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 2:
        raise _bad(folder, f"{st}: max_seq_length must be an integer of at least 2")
    return min(wanted, config.max_positions)


def check_pooling(folder: Path) -> None:
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file() and not read_json(pooling, folder).get("pooling_mode_mean_tokens", False):
        raise ModelFileError(
            f"{folder}: this encoder does not pool by the mean of its tokens (see 1_Pooling/config.json)",
            "Use a mean-pooling sentence encoder (e.g. all-MiniLM-L6-v2); other pooling is not supported.",
        )


def check_tokenizer(path: Path, config: BertConfig, folder: Path) -> None:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:
        raise _bad(folder, f"{path}: not a readable tokenizer.json ({str(e)[:120]})") from None
    if tok.get_vocab_size(with_added_tokens=True) > config.vocab:
        raise _bad(folder, f"{path}: the tokenizer has more tokens than the model's embeddings")


def encoder_config(folder: Path, config: BertConfig) -> dict[str, Any]:
    """``edgekit-encoder.json``: how ``edgekit.runtime.encoder.Encoder`` feeds and pools this model."""
    return {
        "task": "feature-extraction",
        "builder": "bert-encoder",
        "int8": True,
        "prefix": "",
        "pooling": "mean",
        "normalize": True,
        "dim": config.hidden,
        "max_tokens": max_tokens(folder, config),
    }


def build(inputs: Mapping[str, Path], out: Path, progress: ProgressFn = no_progress) -> None:
    """Write the feature-extraction folder (model.onnx, tokenizer.json, edgekit-encoder.json) at ``out``.

    ``inputs``: ``model`` (the Hugging Face folder). ``out`` must not exist yet; the model store verifies
    the result's hash and renames it into place.
    """
    folder = Path(inputs["model"])
    progress(f"build {folder.name}: read weights", 0, 3)
    check_pooling(folder)
    weights = read_bert(folder)
    tokenizer = folder / "tokenizer.json"
    check_tokenizer(tokenizer, weights.config, folder)
    config = encoder_config(folder, weights.config)
    progress(f"build {folder.name}: calibrate", 1, 3)
    smooth = smoothing(weights, tokenizer)
    progress(f"build {folder.name}: write int8 ONNX", 2, 3)
    model = build_graph(weights, smooth, name="bert_encoder", producer="edgekit bert-encoder")
    encoder_folder(out, model, tokenizer, config)
    progress(f"build {folder.name}: write int8 ONNX", 3, 3)


class BuildBertEncoder:
    """The pipeline's ``bert-encoder`` step: a BERT folder with safetensors weights -> int8 ONNX feature
    extractor, without torch (``build``)."""

    def run(self, ctx: StepContext) -> None:
        build({"model": ctx.inputs["model"]}, ctx.out, ctx.progress)
