"""Eval with ONNX models on both sides: tiny real causal LMs built in-process (tests/runtime/onnx_fixture.py)
that share a tokenizer and differ in their weights. Exercises OnnxBackend's scoring seam end to end.

A GGUF-vs-ONNX comparison of the same weights needs an ONNX export of the default model, which the
compression pipeline does not produce yet; it is not faked here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit.evaluate import run_eval
from edgekit.evaluate.scoring import Tokens
from edgekit.runtime.onnx import OnnxBackend
from tests.evaluate.conftest import WriteSuite
from tests.runtime.onnx_fixture import SENTENCES, build_tiny_lm

TEXT = " ".join(SENTENCES * 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-eval")
    a = build_tiny_lm(root / "a", seed=0)
    twin = root / "a-twin"
    shutil.copytree(a, twin)
    return {"a": a, "twin": twin, "b": build_tiny_lm(root / "b", seed=1)}


def test_logit_blocks_match_one_forward_pass(tiny: dict[str, Path]) -> None:
    with OnnxBackend(tiny["a"], threads=1) as backend:
        tokens = Tokens.of(backend, TEXT)
        ids = [*tokens.prefix, *tokens.ids[:40].tolist()]
        whole = np.concatenate(list(backend.logit_blocks(ids, block=len(ids))))
        pieces = np.concatenate(list(backend.logit_blocks(ids, block=7)))
    assert whole.shape == (len(ids), backend._tokenizer.get_vocab_size())
    np.testing.assert_allclose(pieces, whole, rtol=1e-4, atol=1e-4)


def test_onnx_against_its_twin_and_against_other_weights(
    tiny: dict[str, Path], eval_cache: Path, write_suite: WriteSuite
) -> None:
    suite = write_suite(
        {"tiny": TEXT}, chunk_tokens=64, gates="max_mean_kld = 0.01\nmin_top1 = 0.99", speed_runs=1
    )
    same = run_eval(tiny["a"], tiny["twin"], suite=suite)
    assert same.passed and same.overall.mean_kld < 1e-9 and same.overall.top1 == 1.0
    assert same.baseline.backend == same.candidate.backend == "onnxruntime"
    assert same.slices[0].window_tokens == 64 and same.speed[1].gen_tok_s

    cold = run_eval(tiny["a"], tiny["b"], suite=suite, cache=False)
    assert not cold.passed and cold.overall.mean_kld > 0.01
    assert {g.name for g in cold.failures} >= {"drift.all.max_mean_kld", "drift.tiny.max_mean_kld"}
    assert cold.slices[0].baseline_cache == "off" and cold.slices[0].kld_method == "exact"

    warm = run_eval(tiny["a"], tiny["b"], suite=suite)  # the twin run cached baseline "a"
    assert warm.slices[0].baseline_cache == "hit" and warm.slices[0].kld_method == "topk"
    assert np.all(warm.slices[0].stats.kld <= cold.slices[0].stats.kld + 1e-5)
    assert warm.overall.mean_kld == pytest.approx(cold.overall.mean_kld, rel=0.05)
    assert warm.overall.top1 == cold.overall.top1
