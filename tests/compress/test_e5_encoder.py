"""The e5 build pass on a tiny synthetic E5S1 model (e5_fixture.py): the reader, the int8 graph against the
numpy forward in onnxruntime (not mocked), byte-for-byte determinism, and one-line errors for bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.compress import bert_onnx as bert
from edgekit.compress.passes import e5_encoder as e5
from edgekit.errors import ModelFileError
from edgekit.files import tree_sha256
from edgekit.models.lock import BUILD_PASSES

from . import e5_fixture as fx
from .graph_check import cosine, run_graph


def test_reader_follows_the_format(tmp_path: Path) -> None:
    w = e5.read_e5s1(fx.write_e5s1(tmp_path / "m.bin"))
    c = w.config
    assert (c.hidden, c.layers, c.heads, c.ffn, c.max_positions) == (64, 2, 2, 128, 32)
    assert c.vocab == fx.EMBEDDING_ROWS
    # Re-derive one block by hand from the raw bytes: scale, then (code - 8) * scale in e5.c's order.
    raw = fx.tensors()["l1.fo.w"][2][:18]
    scale = np.frombuffer(raw[:2], "<f2")[0].astype(np.float32)
    codes = [b & 15 for b in raw[2:]] + [b >> 4 for b in raw[2:]]
    expected = (np.array(codes, np.float32) - 8) * scale
    assert np.array_equal(w.linear("l1.fo.w")[0, :32], expected)


@pytest.mark.parametrize("smooth", [False, True])
def test_int8_graph_matches_the_numpy_forward(tmp_path: Path, smooth: bool) -> None:
    w = e5.read_e5s1(fx.write_e5s1(tmp_path / "m.bin"))
    factors = np.ones((fx.LAYERS, fx.FFN), np.float32)
    if smooth:  # powers of two on a few channels: exact in the weights, so the result must not move
        factors[:, ::7] = 4.0
    model = bert.build_graph(w, factors)
    linear = bert.dense(w)
    for ids in ([0, 4, 5, 6, 7, 2], [0, 9, 8, 10, 11, 12, 13, 14, 15, 16, 17, 2], [0, 2]):
        got = run_graph(model, ids)
        ref = bert.forward(w, ids, linear)
        assert got.shape == (len(ids), fx.HIDDEN)
        assert cosine(got.mean(axis=0), ref.mean(axis=0)) > 0.995
        assert min(cosine(g, r) for g, r in zip(got, ref, strict=True)) > 0.99


def test_weight_codes_fit_every_cpus_int8_kernel(tmp_path: Path) -> None:
    """x86-64 without VNNI adds two uint8 x int8 products in int16: codes beyond +-63 would saturate it
    (255 * 127 * 2 > 32767) and the embeddings would differ by CPU."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    w = e5.read_e5s1(fx.write_e5s1(tmp_path / "m.bin"))
    model = onnx.load_from_string(bert.build_graph(w, np.ones((fx.LAYERS, fx.FFN), np.float32)))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "DynamicQuantizeMatMul"]
    assert len(matmuls) == 4 * fx.LAYERS
    for node in matmuls:
        codes = weights[node.input[1]]
        assert codes.dtype == np.int8 and int(np.abs(codes.astype(np.int16)).max()) == bert.WEIGHT_LEVELS
        assert len(node.input) < 4 or not node.input[3]  # symmetric: no weight zero point


def test_onnx_checker_accepts_the_hand_written_protobuf(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    w = e5.read_e5s1(fx.write_e5s1(tmp_path / "m.bin"))
    model = onnx.load_from_string(bert.build_graph(w, np.ones((fx.LAYERS, fx.FFN), np.float32)))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["last_hidden_state"]


def test_build_is_deterministic_and_writes_the_folder(tmp_path: Path) -> None:
    inputs = fx.inputs(tmp_path / "in")
    e5.build(inputs, tmp_path / "a")
    e5.build(inputs, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "edgekit-encoder.json",
        "model.onnx",
        "tokenizer.json",
    ]
    assert tree_sha256(tmp_path / "a") == tree_sha256(tmp_path / "b")
    config = json.loads((tmp_path / "a" / "edgekit-encoder.json").read_text())
    assert (config["prefix"], config["pooling"], config["max_tokens"]) == ("query: ", "mean", 32)
    assert config["dim"] == fx.HIDDEN
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == inputs["tokenizer"].read_bytes()


def test_pass_roles_match_the_lock_registry() -> None:
    target, roles = BUILD_PASSES["e5-encoder"]
    assert target == "edgekit.compress.passes.e5_encoder:build" and roles == e5.ROLES


def one_line(e: ModelFileError) -> str:
    assert "\n" not in e.message and e.hint
    return e.message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "cannot read the E5S1 weights"),
        ("magic", "not an E5S1 model file"),
        ("header", "truncated E5S1 file"),
        ("body", "ends past the end of the file"),
        ("version", "unsupported E5S1 header"),
        ("tensor", "has no tensor l1.fi.b"),
    ],
)
def test_bad_weights_are_one_line_errors(tmp_path: Path, damage: str, expected: str) -> None:
    path = tmp_path / "m.bin"
    if damage == "version":
        fx.write_e5s1(path, version=2)
    elif damage == "tensor":
        fx.write_e5s1(path, drop="l1.fi.b")
    elif damage != "missing":
        data = fx.write_e5s1(path).read_bytes()
        path.write_bytes({"magic": b"GGUF" + data[4:], "header": data[:40], "body": data[:-100]}[damage])
    with pytest.raises(ModelFileError) as info:
        e5.build({"weights": path, "tokenizer": fx.write_tokenizer(tmp_path / "t.json")}, tmp_path / "out")
    assert expected in one_line(info.value)
    assert "edgekit pull multilingual-e5-small-q4 --force" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_a_foreign_tokenizer_is_refused(tmp_path: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    foreign = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "hello": 2}, unk_token="[UNK]"))
    foreign.save(str(tmp_path / "t.json"))
    weights = fx.write_e5s1(tmp_path / "m.bin")
    with pytest.raises(ModelFileError) as info:
        e5.build({"weights": weights, "tokenizer": tmp_path / "t.json"}, tmp_path / "out")
    assert "does not belong to multilingual-e5-small" in one_line(info.value)
