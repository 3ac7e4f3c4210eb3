"""The bert-encoder build pass: a Hugging Face BERT folder (safetensors) -> int8 ONNX, torch-free.

Unit tests build a tiny seeded BERT folder here (a safetensors file written from the format's description,
a WordPiece tokenizer) and run the graph in onnxruntime against the numpy forward; the model tests build
the real all-MiniLM-L6-v2 and check the numpy forward against transformers' own model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekit.compress import bert_onnx as bert
from edgekit.compress.passes import bert_encoder as be
from edgekit.errors import ModelFileError
from edgekit.files import tree_sha256
from edgekit.models.lock import BUILD_PASSES

from .graph_check import cosine, run_graph

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 2, 64, 16
WORDS = ["hello", "world", "how", "do", "i", "bake", "bread", "the", "a", "is"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]
HF_LAYER = {
    "attention.self.query": (HIDDEN, HIDDEN),
    "attention.self.key": (HIDDEN, HIDDEN),
    "attention.self.value": (HIDDEN, HIDDEN),
    "attention.output.dense": (HIDDEN, HIDDEN),
    "intermediate.dense": (FFN, HIDDEN),
    "output.dense": (HIDDEN, FFN),
}


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {
        "embeddings.word_embeddings.weight": rng.normal(0, 0.5, (len(VOCAB), HIDDEN)),
        "embeddings.position_embeddings.weight": rng.normal(0, 0.1, (POSITIONS, HIDDEN)),
        "embeddings.token_type_embeddings.weight": rng.normal(0, 0.1, (2, HIDDEN)),
        "embeddings.LayerNorm.weight": 1 + rng.normal(0, 0.1, HIDDEN),
        "embeddings.LayerNorm.bias": rng.normal(0, 0.1, HIDDEN),
        "embeddings.position_ids": np.arange(POSITIONS)[None],  # int64, as transformers saves it: skipped
    }
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."
        for name, shape in HF_LAYER.items():
            out[p + name + ".weight"] = rng.normal(0, 0.2, shape)
            out[p + name + ".bias"] = rng.normal(0, 0.1, shape[0])
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            out[p + norm + ".weight"] = 1 + rng.normal(0, 0.1, HIDDEN)
            out[p + norm + ".bias"] = rng.normal(0, 0.1, HIDDEN)
    return {k: v if v.dtype == np.int64 else v.astype(np.float32) for k, v in out.items()}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], *, dtype: str = "F32") -> None:
    """The format: a little-endian u64 header length, the JSON header (dtype, shape, byte offsets into the
    data that follows), then the raw little-endian tensors."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    body = b""
    for name, t in tensors.items():
        if t.dtype == np.int64:
            raw, code = t.astype("<i8").tobytes(), "I64"
        elif dtype == "F16":
            raw, code = t.astype("<f2").tobytes(), "F16"
        elif dtype == "BF16":
            raw, code = (t.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes(), "BF16"
        else:
            raw, code = t.astype("<f4").tobytes(), "F32"
        header[name] = {
            "dtype": code,
            "shape": list(t.shape),
            "data_offsets": [len(body), len(body) + len(raw)],
        }
        body += raw
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def write_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.enable_padding(length=POSITIONS, pad_id=0, pad_token="[PAD]")  # as MiniLM's tokenizer.json does
    tok.save(str(path))


def bert_folder(folder: Path, *, seed: int = 0, dtype: str = "F32", **config: object) -> Path:
    folder.mkdir(parents=True)
    base = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": FFN,
        "vocab_size": len(VOCAB),
        "max_position_embeddings": POSITIONS,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
    }
    (folder / "config.json").write_text(json.dumps(base | config))
    write_safetensors(folder / "model.safetensors", weights(seed), dtype=dtype)
    write_tokenizer(folder / "tokenizer.json")
    return folder


def test_reader_maps_transformers_names(tmp_path: Path) -> None:
    w = be.read_bert(bert_folder(tmp_path / "m"))
    raw = weights()
    assert (w.config.hidden, w.config.layers, w.config.ffn, w.config.vocab) == (
        HIDDEN,
        LAYERS,
        FFN,
        len(VOCAB),
    )
    assert np.array_equal(w.linear("l1.fo.w"), raw["encoder.layer.1.output.dense.weight"])
    assert np.array_equal(w.f32["l0.aln.b"], raw["encoder.layer.0.attention.output.LayerNorm.bias"])
    assert np.array_equal(w.words([4, 5]), raw["embeddings.word_embeddings.weight"][[4, 5]])


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_half_precision_weights_are_widened_exactly(tmp_path: Path, dtype: str) -> None:
    w = be.read_bert(bert_folder(tmp_path / "m", dtype=dtype))
    raw = weights()["encoder.layer.0.intermediate.dense.weight"]
    got = w.linear("l0.fi.w")
    assert got.dtype == np.float32 and np.abs(got - raw).max() < (1e-3 if dtype == "F16" else 1e-2)


def test_int8_graph_matches_the_numpy_forward(tmp_path: Path) -> None:
    w = be.read_bert(bert_folder(tmp_path / "m"))
    model = bert.build_graph(w, np.ones((LAYERS, FFN), np.float32))
    linear = bert.dense(w)
    for ids in ([2, 4, 5, 3], [2, 6, 7, 8, 9, 10, 11, 12, 13, 3], [2, 3]):
        got, ref = run_graph(model, ids), bert.forward(w, ids, linear)
        assert got.shape == (len(ids), HIDDEN)
        assert cosine(got.mean(axis=0), ref.mean(axis=0)) > 0.995


def test_build_is_deterministic_and_reads_unpadded_tokens(tmp_path: Path) -> None:
    folder = bert_folder(tmp_path / "m")
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 12}))
    be.build({"model": folder}, tmp_path / "a")
    be.build({"model": folder}, tmp_path / "b")
    assert tree_sha256(tmp_path / "a") == tree_sha256(tmp_path / "b")
    config = json.loads((tmp_path / "a" / "edgekit-encoder.json").read_text())
    assert (config["prefix"], config["pooling"], config["max_tokens"], config["dim"]) == (
        "",
        "mean",
        12,
        HIDDEN,
    )
    ids = next(bert.token_ids(folder / "tokenizer.json", ["hello world"], prefix="", max_tokens=12))
    assert ids == [2, 4, 5, 3]  # the tokenizer's padding to 16 is not what the forward reads


def test_pass_roles_match_the_lock_registry() -> None:
    target, roles = BUILD_PASSES["bert-encoder"]
    assert target == "edgekit.compress.passes.bert_encoder:build" and roles == be.ROLES


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("roberta", "not a BERT encoder this build computes (model_type 'roberta')"),
        ("relu", "hidden_act 'relu'"),
        ("no-size", "missing or bad field 'hidden_size'"),
        ("garbage", "not a safetensors file"),
        ("tensor", "has no tensor encoder.layer.1.output.dense.bias"),
        ("shape", "tensor encoder.layer.0.output.dense.weight is (32, 32), expected (32, 64)"),
        ("cls", "does not pool by the mean of its tokens"),
    ],
)
def test_bad_folders_are_one_line_errors_and_leave_nothing(
    tmp_path: Path, damage: str, expected: str
) -> None:
    extra = {"roberta": {"model_type": "roberta"}, "relu": {"hidden_act": "relu"}}.get(damage, {})
    folder = bert_folder(tmp_path / "m", **extra)
    if damage == "no-size":
        config = json.loads((folder / "config.json").read_text())
        del config["hidden_size"]
        (folder / "config.json").write_text(json.dumps(config))
    elif damage == "garbage":
        (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    elif damage in ("tensor", "shape"):
        tensors = weights()
        if damage == "tensor":
            del tensors["encoder.layer.1.output.dense.bias"]
        else:
            tensors["encoder.layer.0.output.dense.weight"] = np.zeros((HIDDEN, HIDDEN), np.float32)
        write_safetensors(folder / "model.safetensors", tensors)
    elif damage == "cls":
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    with pytest.raises(ModelFileError) as info:
        be.build({"model": folder}, tmp_path / "out")
    assert expected in info.value.message and "\n" not in info.value.message and info.value.hint
    assert not (tmp_path / "out").exists()


# --- the real all-MiniLM-L6-v2 ---------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_the_numpy_forward_is_transformers_bert(tmp_path: Path) -> None:
    """The reference the int8 build is measured against is the model itself: transformers' BertModel."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import edgekit

    folder = edgekit.pull("all-minilm-l6-v2")
    w = be.read_bert(folder)
    model = transformers.AutoModel.from_pretrained(str(folder)).eval()
    ids = next(bert.token_ids(folder / "tokenizer.json", ["How do I bake bread?"], prefix="", max_tokens=256))
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    assert np.abs(bert.forward(w, ids, bert.dense(w)) - theirs).max() < 1e-4


@pytest.mark.model
@pytest.mark.slow
def test_the_real_build_matches_its_pin_and_its_fp32_model(isolated: Path) -> None:
    import edgekit
    from edgekit.models.store import ModelStore
    from edgekit.runtime.encoder import ENCODER_MODEL, Encoder, encoder_dir

    store = ModelStore()
    folder = encoder_dir(ENCODER_MODEL)  # built here, in an isolated cache, and verified against the pin
    assert tree_sha256(folder) == store.lock.get(ENCODER_MODEL).sha256
    assert encoder_dir("all-minilm-l6-v2") == folder  # the folder it is built from names its build
    texts = [
        "How can I kill a Python process that is stuck?",
        "The weather is lovely today and I am going for a walk in the park.",
        "Please summarize this article about renewable energy in two sentences.",
    ]
    source = edgekit.pull("all-minilm-l6-v2")
    ref = bert.reference_embeddings(be.read_bert(source), source / "tokenizer.json", texts, max_tokens=256)
    cos = (Encoder(folder, threads=1).embed(texts) * ref).sum(axis=1)
    assert cos.min() > 0.98, cos


NO_TORCH_QUANTIZE = """
import sys
for name in ("torch", "transformers", "optimum"):
    sys.modules[name] = None  # importing any of them now fails
import edgekit
r = edgekit.quantize("all-minilm-l6-v2", "int8", format="onnx", out=sys.argv[1], lock_path=sys.argv[2])
print(r.provenance.settings["builder"], r.entry.role)
"""


@pytest.mark.model
@pytest.mark.slow
def test_quantize_builds_a_bert_encoders_int8_onnx_without_torch(isolated: Path) -> None:
    import subprocess
    import sys

    out, lock = isolated / "minilm", isolated / "models.lock"
    cmd = [sys.executable, "-c", NO_TORCH_QUANTIZE, str(out), str(lock)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["bert-encoder", "encoder"]
    assert {p.name for p in out.iterdir()} == {"model.onnx", "tokenizer.json", "edgekit-encoder.json"}
