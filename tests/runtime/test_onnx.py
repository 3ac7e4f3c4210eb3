"""OnnxBackend against a tiny real causal LM built in-process (onnx_fixture.py); onnxruntime is not mocked."""

from __future__ import annotations

import shutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from edgekit.errors import ContextOverflowError, ModelFileError
from edgekit.runtime.base import Backend
from edgekit.runtime.onnx import IncrementalDetokenizer, OnnxBackend, sample_token
from edgekit.runtime.types import ChatMessage, Completion, GenerationParams

from .onnx_fixture import CHATML_TEMPLATE, HEAD_DIM, HEADS, LAYERS, build_tiny_lm

MSGS: list[ChatMessage] = [
    {"role": "system", "content": "You are tiny."},
    {"role": "user", "content": "hello world"},
]
GREEDY = GenerationParams(max_tokens=16, temperature=0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny") / "tiny-lm")


@pytest.fixture(scope="module")
def backend(model_dir: Path):
    with OnnxBackend(model_dir, threads=1) as b:
        yield b


def token_ids(chunks) -> list[int]:
    return [s.token_id for c in chunks for s in c.signals]


# --- loading ---------------------------------------------------------------------------------------


def test_loads_optimum_layout(backend: OnnxBackend, model_dir: Path) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "onnxruntime"
    assert backend.model_id == "tiny-lm"
    assert backend.n_ctx == 128  # max_position_embeddings
    assert backend.capabilities.logprobs and backend.capabilities.stream and not backend.capabilities.grammar
    assert (model_dir / "model.onnx_data").is_file()
    tok = backend._tokenizer
    assert backend.eos_ids == {tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
    for name, empty in backend._empty_past.items():
        assert name.startswith("past_key_values.")
        assert empty.shape == (1, HEADS, 0, HEAD_DIM) and empty.dtype == np.float32
    assert len(backend._empty_past) == 2 * LAYERS
    assert OnnxBackend(model_dir, model_id="x", n_ctx=64).n_ctx == 64


def test_prompt_is_rendered_with_chat_template(backend: OnnxBackend) -> None:
    text = backend.render_chat(MSGS)
    assert text == (
        "<|im_start|>system\nYou are tiny.<|im_end|>\n"
        "<|im_start|>user\nhello world<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = backend.encode_chat(MSGS)
    tok = backend._tokenizer
    assert ids == tok.encode(text, add_special_tokens=False).ids
    im_start = tok.token_to_id("<|im_start|>")
    assert im_start is not None
    assert ids.count(im_start) == 3  # special tokens recognised, not spelled out
    assert "im_start" in CHATML_TEMPLATE


# --- 1. KV cache -------------------------------------------------------------------------------------


def test_kv_cache_logits_match_full_recompute(
    backend: OnnxBackend, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[np.ndarray] = []
    forward = backend._forward

    def recording_forward(state: Any, ids: list[int]) -> np.ndarray:
        logits = forward(state, ids)
        seen.append(logits.copy())
        return logits

    monkeypatch.setattr(backend, "_forward", recording_forward)
    chunks = list(backend.stream(MSGS, GenerationParams(max_tokens=12, temperature=0)))
    generated = token_ids(chunks)
    assert len(generated) == 12 and len(seen) == 12

    prompt = backend.encode_chat(MSGS)
    full = prompt + generated[:-1]
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": np.asarray([full], dtype=np.int64),
        "attention_mask": np.ones((1, len(full)), dtype=np.int64),
        "position_ids": np.arange(len(full), dtype=np.int64)[None, :],
    }
    feeds.update({n: np.zeros((1, HEADS, 0, HEAD_DIM), np.float32) for n in backend._empty_past})
    (logits,) = sess.run(["logits"], feeds)
    assert logits.shape == (1, len(full), backend._tokenizer.get_vocab_size())
    for k, step in enumerate(seen):
        np.testing.assert_allclose(step, logits[0, len(prompt) - 1 + k], atol=1e-4, rtol=1e-4)
        assert generated[k] == int(np.argmax(step))  # greedy picked the argmax of what it saw


# --- 2. determinism, length, usage, signals ------------------------------------------------------


def test_a_busy_machine_gets_a_session_with_fewer_threads(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime fixes threads per session: with a core taken elsewhere, generation moves to a session
    with one thread fewer (made then, and kept), and back when the core is free; same greedy tokens."""
    from edgekit.runtime import onnx as onnx_backend
    from edgekit.runtime import threads

    monkeypatch.setattr(onnx_backend, "default_threads", lambda: 2)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    busy = [0]
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: busy[0])
    fixed = OnnxBackend(model_dir, threads=2)
    with OnnxBackend(model_dir) as adaptive:
        assert token_ids(adaptive.stream(MSGS, GREEDY)) == token_ids(fixed.stream(MSGS, GREEDY))
        assert set(adaptive._sessions) == {2}
        busy[0] = 1
        assert token_ids(adaptive.stream(MSGS, GREEDY)) == token_ids(fixed.stream(MSGS, GREEDY))
        one = adaptive._sessions[1]
        assert one.get_session_options().intra_op_num_threads == 1
        busy[0] = 0
        chunks = adaptive.stream(MSGS, GREEDY)
        next(chunks)
        assert adaptive._current is adaptive._sessions[2]  # the full session again
        chunks.close()
        busy[0] = 1
        assert list(adaptive.stream(MSGS, GREEDY)) and adaptive._sessions[1] is one  # kept, not remade
    fixed.close()


def test_greedy_is_deterministic(backend: OnnxBackend) -> None:
    a = list(backend.stream(MSGS, GREEDY))
    b = list(backend.stream(MSGS, GREEDY))
    assert token_ids(a) == token_ids(b)
    assert "".join(c.text for c in a) == "".join(c.text for c in b)


def test_seed_determinism(backend: OnnxBackend) -> None:
    def run(seed: int) -> list[int]:
        params = GenerationParams(max_tokens=16, temperature=1.0, top_k=50, top_p=0.95, seed=seed)
        return token_ids(backend.stream(MSGS, params))

    assert run(7) == run(7)
    assert len({tuple(run(s)) for s in range(5)}) > 1


def test_max_tokens_gives_length_usage_and_signals(backend: OnnxBackend) -> None:
    chunks = list(backend.stream(MSGS, GenerationParams(max_tokens=9, temperature=0.8, seed=3)))
    final = chunks[-1]
    assert final.text == "" and final.finish_reason == "length"
    assert final.usage is not None
    assert final.usage.prompt_tokens == len(backend.encode_chat(MSGS))
    assert final.usage.completion_tokens == 9
    signals = [s for c in chunks for s in c.signals]
    assert len(signals) == 9
    assert all(len(c.signals) == 1 for c in chunks if c.signals)
    for s in signals:
        assert s.prob is not None and 0 < s.prob <= 1
        assert s.entropy is not None and s.entropy >= 0
        assert isinstance(s.token_id, int)
    assert "".join(s.text for s in signals) == "".join(c.text for c in chunks)
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_generation_is_capped_at_n_ctx(model_dir: Path) -> None:
    probe = OnnxBackend(model_dir)
    n_prompt = len(probe.encode_chat(MSGS))
    small = OnnxBackend(model_dir, n_ctx=n_prompt + 3)
    final = list(small.stream(MSGS, GenerationParams(max_tokens=50, temperature=0)))[-1]
    assert final.finish_reason == "length"
    assert final.usage is not None and final.usage.completion_tokens == 3


def test_eos_ends_generation(tmp_path: Path) -> None:
    folder = build_tiny_lm(tmp_path / "eager-eos", eos_bias=60.0, external_data=False)
    chunks = list(OnnxBackend(folder).stream(MSGS, GenerationParams(max_tokens=10, temperature=0)))
    assert len(chunks) == 1
    assert chunks[0].finish_reason == "stop"
    assert chunks[0].usage is not None and chunks[0].usage.completion_tokens == 0


# --- 3. stop strings, overflow, bad files -----------------------------------------------------------


def test_stop_string_cuts_output(backend: OnnxBackend) -> None:
    params = GenerationParams(max_tokens=40, temperature=0)
    full = "".join(c.text for c in backend.stream(MSGS, params))
    assert len(full) > 8
    k = len(full) // 2
    stop = full[k : k + 2]
    cut = full.find(stop)
    chunks = list(backend.stream(MSGS, GenerationParams(max_tokens=40, temperature=0, stop=(stop,))))
    text = "".join(c.text for c in chunks)
    assert text == full[:cut]
    assert stop not in text
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens < 40


def test_context_overflow(model_dir: Path) -> None:
    tiny = OnnxBackend(model_dir, n_ctx=8)
    with pytest.raises(ContextOverflowError, match=r"\d+ tokens .* context window is 8"):
        list(tiny.stream(MSGS, GREEDY))


def test_stream_text_continues_the_prompt_without_the_template(backend: OnnxBackend, model_dir: Path) -> None:
    prompt = "Once upon a time there was"
    chunks = list(backend.stream_text(prompt, GREEDY))
    prefix, ids = backend.text_tokens(prompt)
    final = chunks[-1]
    assert final.usage is not None and final.usage.prompt_tokens == len(prefix) + len(ids)
    assert final.usage.prompt_tokens < len(backend.encode_chat([{"role": "user", "content": prompt}]))
    assert token_ids(chunks) == token_ids(backend.stream_text(prompt, GREEDY))  # greedy: repeatable
    with pytest.raises(ContextOverflowError):
        OnnxBackend(model_dir, n_ctx=4).stream_text(prompt, GREEDY)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist") as err:
        OnnxBackend(tmp_path / "nope")
    assert err.value.hint


def test_missing_model_and_tokenizer(model_dir: Path, tmp_path: Path) -> None:
    no_model = tmp_path / "no-model"
    shutil.copytree(model_dir, no_model)
    (no_model / "model.onnx").unlink()
    with pytest.raises(ModelFileError, match=r"no model\.onnx"):
        OnnxBackend(no_model)

    no_tok = tmp_path / "no-tok"
    shutil.copytree(model_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ModelFileError, match=r"tokenizer\.json"):
        OnnxBackend(no_tok)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no-external-data"])
def test_broken_model_file(model_dir: Path, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / damage
    shutil.copytree(model_dir, folder)
    onnx_file = folder / "model.onnx"
    if damage == "garbage":
        onnx_file.write_bytes(b"this is not an onnx model\x00\xff" * 10)
    elif damage == "truncated":
        onnx_file.write_bytes(onnx_file.read_bytes()[:300])
    else:
        (folder / "model.onnx_data").unlink()
    with pytest.raises(ModelFileError, match="onnxruntime cannot load") as err:
        OnnxBackend(folder)
    assert "re-export" in err.value.hint


# --- 4. chat() and stream lifecycle ------------------------------------------------------------------


def test_chat_equals_concatenated_stream(backend: OnnxBackend) -> None:
    params = GenerationParams(max_tokens=20, temperature=0.7, seed=11)
    chunks = list(backend.stream(MSGS, params))
    done = backend.chat(MSGS, params)
    assert isinstance(done, Completion)
    assert done.text == "".join(c.text for c in chunks)
    assert done.finish_reason == chunks[-1].finish_reason == "length"
    assert done.usage == chunks[-1].usage
    assert done.backend == "onnxruntime" and done.model == "tiny-lm"
    assert [s.token_id for s in done.signals] == token_ids(chunks)
    assert done.confidence.mean_prob is not None


def test_closing_the_stream_early_leaves_backend_usable(backend: OnnxBackend) -> None:
    expected = token_ids(backend.stream(MSGS, GREEDY))
    it = backend.stream(MSGS, GREEDY)
    assert isinstance(it, Generator)
    first = next(it)
    assert first.signals
    it.close()
    with pytest.raises(StopIteration):
        next(it)
    assert token_ids(backend.stream(MSGS, GREEDY)) == expected


# --- decoding helpers --------------------------------------------------------------------------------


def test_incremental_detokenizer_never_splits_characters(backend: OnnxBackend) -> None:
    tok = backend._tokenizer
    text = "Emoji 🙂 then 日本語, café → ok 🎉!"
    ids = tok.encode(text, add_special_tokens=False).ids
    # the byte-level BPE really does split some characters across tokens
    assert any("\ufffd" in tok.decode([i]) for i in ids)
    prompt_tail = tok.encode("<|im_start|>assistant\n", add_special_tokens=False).ids
    detok = IncrementalDetokenizer(tok, prompt_tail)
    pieces = [detok.push(i) for i in ids]
    pieces.append(detok.flush())
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == text
    # A character the token limit cut in half is dropped, not shown as U+FFFD.
    cut = tok.encode("ok 🎉", add_special_tokens=False).ids[:-1]
    detok = IncrementalDetokenizer(tok, prompt_tail)
    shown = "".join(detok.push(i) for i in cut) + detok.flush()
    assert shown.rstrip() == "ok" and "\ufffd" not in shown


def test_sample_token_filters() -> None:
    logits = np.array([0.0, 3.0, 2.9, -1.0, 1.0], dtype=np.float32)
    rng = np.random.default_rng(0)

    def picks(n: int, **kw: Any) -> set[int]:
        params = GenerationParams(**kw)
        return {sample_token(logits, params, rng) for _ in range(n)}

    assert picks(1, temperature=0) == {1}
    assert picks(20, temperature=1.0, top_k=1) == {1}
    assert picks(20, temperature=1.0, top_p=0.01) == {1}
    assert picks(200, temperature=5.0, top_k=2, top_p=1.0) == {1, 2}
    assert picks(400, temperature=5.0, top_k=0, top_p=1.0) == {0, 1, 2, 3, 4}
