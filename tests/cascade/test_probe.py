"""The hidden-state probe: states read from the real default model, and the probe's own logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.cascade.policy import PolicyError
from edgekit.cascade.probe import Probe, answer_state, auroc, cross_fitted


@pytest.mark.model
def test_answer_state_reads_the_models_last_layer_and_leaves_chat_as_it_was(
    default_model: edgekit.Model,
) -> None:
    backend = default_model.backend
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    before = default_model.chat(msgs, max_tokens=8, temperature=0.0).text
    right = answer_state(backend, msgs, "The capital of France is Paris.")
    again = answer_state(backend, msgs, "The capital of France is Paris.")
    wrong = answer_state(backend, msgs, "Bananas are yellow.")
    width = default_model.backend.llm.n_embd()  # type: ignore[attr-defined]
    assert right.shape == (2 * width,) and np.isfinite(right).all()
    np.testing.assert_allclose(right, again, rtol=1e-4, atol=1e-4)  # same tokens, same state
    assert not np.allclose(right, wrong, atol=1e-2)
    # a prefix's states do not depend on what follows (causal), so per-position states line up
    tokens = backend.prompt_tokens(msgs)
    full = backend.hidden_states([*tokens, *backend.tokenize("Paris.", special=False)])
    np.testing.assert_allclose(backend.hidden_states(tokens), full[: len(tokens)], rtol=1e-3, atol=1e-3)
    assert default_model.chat(msgs, max_tokens=8, temperature=0.0).text == before  # logits mode again


def test_probe_learns_a_separable_direction_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    y = x[:, 3] + 0.3 * rng.normal(size=200) > 0
    held = cross_fitted(x, y, l2=1.0)
    assert auroc(held, y) > 0.9
    probe = Probe.fit(x, y, l2=1.0, trained_on="synthetic")
    path = tmp_path / "probe.json"
    path.write_text(probe.to_json())
    np.testing.assert_allclose(Probe.load(path).scores(x), probe.scores(x), atol=1e-5)
    path.write_text(
        '{"kind": "edgekit.state-probe", "version": 1, "l2": 1, "mean": [0], "std": [1], "weights": [1]}'
    )
    with pytest.raises(PolicyError, match="do not match"):
        Probe.load(path)


def test_auroc_counts_ties_half_and_needs_both_classes() -> None:
    assert auroc([0.9, 0.1], [True, False]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.5, 0.7], [True, True]) != auroc([0.5, 0.7], [True, True])  # nan: undefined
