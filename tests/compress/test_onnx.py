"""The ONNX path on the real default model: export with past key values, int8-dynamic, int8-static and
int4 quantization, each loaded and answering in edgekit's ONNX backend, models.lock provenance, bad
input, interrupted writes, and drift of the ONNX export against the GGUF it was made from.

The fp32 export is built once per session (``default_onnx``); each quantization runs once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import edgekit
from edgekit.compress.calibration import evaluation_texts, load_calibration
from edgekit.compress.onnx import plan_onnx, to_onnx
from edgekit.compress.passes.onnx_export import export_causal_lm
from edgekit.compress.passes.onnx_quantize import MODES, TextSet, quantize_onnx, share_tied_embedding
from edgekit.errors import InputError, ModelFileError, TokenizerMismatchError
from edgekit.evaluate.scoring import Tokens, check_same_tokens
from edgekit.files import content_sha256
from edgekit.models.lock import Lockfile
from tests.evaluate.conftest import excerpt

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = ROOT / "recipes" / "data" / "calibration" / "chat.jsonl"
QUESTION = "Which city is the capital of France?"
# Operators each mode must leave in the graph: proof that the weights really were quantized.
QUANT_OPS = {
    "int8-dynamic": {"MatMulNBits", "GatherBlockQuantized"},
    "int8-static": {
        "QuantizeLinear",
        "QLinearMatMul",
        "DequantizeLinear",
        "MatMulNBits",
        "GatherBlockQuantized",
    },
    "int4": {"MatMulNBits", "GatherBlockQuantized"},
}


def graph_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("model.onnx"))


def op_types(folder: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.node}


def answer(folder: Path) -> tuple[str, int]:
    with edgekit.load(str(folder), threads=1) as model:
        reply = model.chat(QUESTION, temperature=0, max_tokens=24)
    return reply.text, reply.usage.completion_tokens


def small_calibration() -> TextSet:
    """Two documents of the shipped calibration set (never the evaluation texts)."""
    return TextSet(load_calibration(CALIBRATION).texts[:2])


# --- export --------------------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_export_has_a_kv_cache_and_answers(default_onnx: Path, default_hf: Path) -> None:
    side = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
    for name in ("model.onnx", *side):
        assert (default_onnx / name).is_file(), name
    session = ort.InferenceSession(str(default_onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    config = json.loads((default_hf / "config.json").read_text())
    assert {"input_ids", "attention_mask"} <= set(inputs)
    # Llama's decoder goes through onnxruntime-genai's builder: fused attention and norms
    assert {"GroupQueryAttention", "SkipSimplifiedLayerNormalization"} <= op_types(default_onnx)
    past = [n for n in inputs if n.startswith("past_key_values.")]
    assert len(past) == 2 * config["num_hidden_layers"]
    key = inputs["past_key_values.0.key"]
    # grouped-query attention: the cache has the KV heads, not the query heads
    assert key.type == "tensor(float)" and key.shape[1] == config["num_key_value_heads"] == 3
    text, tokens = answer(default_onnx)
    assert tokens > 0 and "Paris" in text


@pytest.mark.model
@pytest.mark.slow
def test_in_place_cache_gives_the_logits_and_text_of_the_copied_cache(default_onnx: Path) -> None:
    """The builder's graph appends to preallocated cache buffers bound as past and present; the same
    graph fed its cache back as new arrays each step gives the same logits, so the same greedy text."""
    from edgekit.runtime.onnx import OnnxBackend
    from edgekit.runtime.types import GenerationParams

    backend = OnnxBackend(default_onnx, threads=1)
    prefix, ids = backend.text_tokens("The capital of France is Paris, and the capital of Spain is")
    tokens = [*prefix, *ids]
    in_place = np.concatenate(list(backend.logit_blocks(tokens, block=5)))
    state = backend.new_state()  # no capacity: the cache comes back as new arrays
    copied = np.concatenate([backend.advance(state, tokens[i : i + 5]) for i in range(0, len(tokens), 5)])
    assert np.array_equal(in_place, copied)

    messages = [{"role": "user", "content": QUESTION}]
    chunks = list(backend.stream(messages, GenerationParams(max_tokens=24, temperature=0)))
    streamed = [sig.token_id for c in chunks for sig in c.signals]
    state, feed, greedy = backend.new_state(), backend.encode_chat(messages), []
    for _ in range(24):
        token = int(np.argmax(backend.advance(state, feed)[-1]))
        if token in backend.eos_ids:
            break
        greedy.append(token)
        feed = [token]
    assert streamed == greedy and "Paris" in "".join(c.text for c in chunks)
    backend.close()


@pytest.mark.model
@pytest.mark.slow
def test_export_is_pinned_with_provenance(default_onnx: Path, default_hf: Path) -> None:
    entry = Lockfile.load(default_onnx.parent / "models.lock").models["smollm2-135m-onnx"]
    assert entry.format == "onnx" and entry.sha256 == content_sha256(default_onnx)
    prov = entry.provenance or {}
    assert prov["step"] == "export" and prov["quant_type"] == "fp32"
    assert prov["source_sha256"] == content_sha256(default_hf)
    assert {"onnxruntime-genai", "onnxruntime", "torch", "transformers"} <= set(prov["tools"])


# --- quantization --------------------------------------------------------------------------------


def tied_graph(tied: bool) -> onnx.ModelProto:
    """A token embedding and an output projection of one weight W [64, 40], as the exporter writes them."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((64, 40)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    if not tied:
        inits.append(numpy_helper.from_array(w.T.copy(), "E"))
    nodes = [
        *(
            [helper.make_node("Transpose", ["W"], ["Wt"], name="/embed/Transpose", perm=[1, 0])]
            if tied
            else []
        ),
        helper.make_node("Gather", ["Wt" if tied else "E", "ids"], ["emb"], name="/embed/Gather"),
        helper.make_node("MatMul", ["emb", "W"], ["logits"], name="/lm_head/MatMul"),
    ]
    graph = helper.make_graph(
        nodes,
        "tied",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("emb", "logits")],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("bits", [8, 4])
def test_tied_embedding_reads_the_quantized_output_projection(bits: int) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = tied_graph(tied=True)
    w = onnx.numpy_helper.to_array(model.graph.initializer[0])
    quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=32, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    model = quantizer.model.model
    assert share_tied_embedding(model)
    assert "W" not in {i.name for i in model.graph.initializer}  # no float copy left
    assert {n.op_type for n in model.graph.node} == {"Reshape", "GatherBlockQuantized", "MatMulNBits"}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([0, 17, 39], dtype=np.int64)
    emb, logits = session.run(None, {"ids": ids})
    # the rows of W as the quantized projection holds them: within one quantization step of W's own
    step = np.abs(w).max() / (2 ** (bits - 1) - 1)
    assert np.abs(emb - w.T[ids]).max() <= step
    assert np.allclose(logits, emb @ w, atol=0.2 * np.abs(emb @ w).max())
    untied = tied_graph(tied=False)
    assert not share_tied_embedding(untied) and len(untied.graph.initializer) == 2


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_quantized_model_loads_answers_and_is_pinned(
    mode: str,
    default_onnx: Path,
    tmp_path: Path,
) -> None:
    handlers = list(logging.getLogger().handlers)
    cal_file = None
    if mode == "int8-static":
        cal_file = tmp_path / "cal.jsonl"
        cal_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in small_calibration().texts))
    lock = tmp_path / "models.lock"
    lock.write_text((ROOT / "models.lock").read_text())
    out = to_onnx(
        default_onnx, tmp_path / mode, mode, calibration=cal_file, lock_path=lock,
        name=f"smollm2-onnx-{mode}", source_sha256="ab" * 32,
    )  # fmt: skip
    cal = load_calibration(cal_file) if cal_file else None
    assert logging.getLogger().handlers == handlers  # onnxruntime's basicConfig did not leak out

    assert QUANT_OPS[mode] <= op_types(out)
    # graph and weights together (the fp32 export keeps its weights in model.onnx.data): every build reads
    # the tied token embedding from the output projection's quantized weights, so no float copy of it is
    # left (113 MB of the fp32 export's 544)
    assert graph_bytes(out) < 0.3 * graph_bytes(default_onnx)
    assert (out / "tokenizer.json").read_bytes() == (default_onnx / "tokenizer.json").read_bytes()
    # A plain completion, not QUESTION in chat: there the float model's first token is a near-tie ("The"
    # 26.68, "Le" 26.65), and int8 builds (as the Q8_0 GGUF) open in French without naming Paris
    with edgekit.load(str(out), threads=1) as model:
        reply = model.complete("The capital of France is", temperature=0, max_tokens=8)
    assert reply.usage.completion_tokens > 0 and "Paris" in reply.text

    entry = Lockfile.load(lock).models[f"smollm2-onnx-{mode}"]
    prov = entry.provenance or {}
    assert entry.format == "onnx" and entry.sha256 == content_sha256(out)
    assert prov["step"] == "quantize" and prov["quant_type"] == mode and prov["source_sha256"] == "ab" * 32
    assert "onnxruntime" in prov["tools"]
    if cal is not None:
        assert prov["calibration_sha256"] == cal.sha256
    else:
        assert "calibration_sha256" not in prov


@pytest.mark.model
@pytest.mark.slow
def test_to_onnx_quantizes_an_export_and_pins_it(default_onnx: Path, tmp_path: Path) -> None:
    lock = tmp_path / "models.lock"
    lock.write_text((ROOT / "models.lock").read_text())
    out = to_onnx(
        default_onnx, tmp_path / "int4-b64", "int4", block_size=64, lock_path=lock, name="smollm2-int4-b64",
        source="smollm2-135m-onnx", source_sha256="cd" * 32,
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int4-b64", "models.lock"]  # no work folder left
    blocks = {
        a.i
        for n in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.node
        if n.op_type == "MatMulNBits"
        for a in n.attribute
        if a.name == "block_size"
    }
    assert blocks == {64}
    prov = Lockfile.load(lock).models["smollm2-int4-b64"].provenance or {}
    assert prov["quant_type"] == "int4" and prov["settings"]["block_size"] == 64
    assert prov["source"] == "smollm2-135m-onnx" and prov["source_sha256"] == "cd" * 32
    with pytest.raises(InputError, match="already an ONNX export"):
        to_onnx(default_onnx, tmp_path / "again", "fp32")


@pytest.mark.model
def test_calibration_text_that_overlaps_the_drift_gate_is_warned_of(
    default_onnx: Path, tmp_path: Path
) -> None:
    """Static calibration on the evaluation text would make drift look smaller: the plan says so, as it
    does for GGUF, and builds nothing."""
    leaked = tmp_path / "leaked.txt"
    leaked.write_text("\n\n".join(evaluation_texts()), encoding="utf-8")
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps({"text": t}) + "\n" for t in small_calibration().texts))
    kw = {"lock_path": tmp_path / "models.lock", "name": "q"}
    warned = plan_onnx(default_onnx, tmp_path / "q", "int8-static", calibration=leaked, **kw).warnings
    assert len(warned) == 1 and "evaluation text" in warned[0]
    assert plan_onnx(default_onnx, tmp_path / "q", "int8-static", calibration=clean, **kw).warnings == ()
    assert not (tmp_path / "q").exists()


# --- GGUF vs ONNX drift (the eval gate across formats) --------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_gguf_and_its_onnx_export_agree_in_edgekit_eval(
    default_model_path: Path,
    default_onnx: Path,
    tmp_path: Path,
) -> None:
    """The ONNX export holds the GGUF's Q4_1 weights dequantized: same model, different runtime, so the
    drift gate must pass with tight thresholds (llama.cpp still rounds activations to 8 bits in its Q4_1
    dot products, so the distributions are close but not identical)."""
    (tmp_path / "prose.txt").write_text(excerpt("prose.txt", 700), encoding="utf-8")
    (tmp_path / "code.txt").write_text(excerpt("code.txt", 600), encoding="utf-8")
    suite = tmp_path / "suite.toml"
    suite.write_text(
        "version = 1\n[drift]\nchunk_tokens = 128\nmin_tokens = 32\n"
        '[slices.prose]\nfile = "prose.txt"\n[slices.code]\nfile = "code.txt"\n'
        "[tasks]\nenabled = false\n[speed]\nruns = 0\n"
        "[gates]\nmax_mean_kld = 0.02\nmin_top1 = 0.9\nmax_ppl_ratio = 1.05\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "eval", "--baseline", str(default_model_path),
         "--candidate", str(default_onnx), "--suite", str(suite), "--json", str(tmp_path / "r.json"),
         "--no-cache"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "EDGEKIT_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["baseline"]["format"], report["candidate"]["format"]) == ("gguf", "onnx")
    assert (report["baseline"]["backend"], report["candidate"]["backend"]) == ("llama.cpp", "onnxruntime")
    drift = report["drift"]["all"]
    assert drift["tokens"] > 200
    assert 0 < drift["mean_kld"] < 0.02 and drift["top1"] >= 0.9
    assert report["passed"] and report["summary"]["failed"] == 0


def test_token_prefixes_may_differ_only_by_one_bos() -> None:
    ids = np.array([5, 6, 7], dtype=np.int32)
    check_same_tokens("s", Tokens((), ids), Tokens((1,), ids))  # GGUF without BOS vs its HF export
    check_same_tokens("s", Tokens((1,), ids), Tokens((), ids))
    for base, cand in [((1,), (2,)), ((), (1, 2)), ((1, 2), (1,))]:
        with pytest.raises(TokenizerMismatchError):
            check_same_tokens("s", Tokens(base, ids), Tokens(cand, ids))
    with pytest.raises(TokenizerMismatchError):
        check_same_tokens("s", Tokens((), ids), Tokens((1,), ids[:2]))


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.slow
def test_int8_static_without_calibration_is_an_input_error(
    default_onnx: Path,
    default_hf: Path,
    tmp_path: Path,
) -> None:
    for calibration in (None, [], ["   "]):
        with pytest.raises(InputError, match="calibration"):
            quantize_onnx(default_onnx, tmp_path / "q", "int8-static", calibration=calibration)
    with pytest.raises(InputError, match="calibration"):
        to_onnx(default_hf, tmp_path / "q", "int8-static")  # refused before the export starts
    assert list(tmp_path.iterdir()) == []


@pytest.mark.model
@pytest.mark.slow
def test_unknown_mode_and_block_size_are_input_errors(
    default_onnx: Path,
    default_hf: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match="int8-dynamic, int8-static, int4"):
        quantize_onnx(default_onnx, tmp_path / "q", "int3")
    with pytest.raises(InputError, match="fp32, int8-dynamic"):
        to_onnx(default_hf, tmp_path / "q", "q4_k_m")
    with pytest.raises(InputError, match="power of two"):
        quantize_onnx(default_onnx, tmp_path / "q", "int4", block_size=24)
    with pytest.raises(InputError, match=r"no model\.onnx"):
        quantize_onnx(default_hf, tmp_path / "q", "int4")
    assert list(tmp_path.iterdir()) == []


def test_sources_that_are_not_causal_lms_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no config\.json"):
        export_causal_lm(tmp_path, tmp_path / "out")
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    with pytest.raises(InputError, match="not a causal language model"):
        export_causal_lm(encoder, tmp_path / "out")
    with pytest.raises(InputError, match="encoder"):
        to_onnx(encoder, tmp_path / "out", "int4")
    assert not (tmp_path / "out").exists()


def test_a_builder_failure_is_one_model_file_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A Llama folder without weights: the fused exporter's child fails; the error names the folder and
    the builder's last line, and no output or scratch folder is left."""
    broken = tmp_path / "broken"
    broken.mkdir()
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 1}
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelFileError, match=r"broken: ONNX export failed \((exit|signal) "):
        export_causal_lm(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


@pytest.mark.model
@pytest.mark.slow
def test_interrupted_quantization_leaves_the_old_output_and_no_temporary(
    default_onnx: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "int4"
    out.mkdir()
    (out / "model.onnx").write_text("the previous build")

    def interrupt(stage: str, done: int, total: int | None) -> None:
        if stage == "quantize" and done == total:  # everything is written, just before the rename
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize_onnx(default_onnx, out, "int4", progress=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == ["int4"]
    assert [p.name for p in out.iterdir()] == ["model.onnx"]
    assert (out / "model.onnx").read_text() == "the previous build"
