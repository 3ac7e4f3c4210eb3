"""Drift metrics on synthetic logits, against direct float64 formulas (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.evaluate import drift
from edgekit.evaluate.drift import DriftSummary, PositionStats


def logits_pair(n: int = 64, vocab: int = 3000, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal((n, vocab)) * 3).astype(np.float32)
    base[np.arange(n), rng.integers(0, vocab, n)] += 8  # peaked, like a language model
    cand = (base + rng.standard_normal((n, vocab)) * noise).astype(np.float32)
    targets = rng.integers(0, vocab, n)
    return base, cand, targets


def log_softmax64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def test_exact_matches_the_textbook_formulas() -> None:
    base, cand, targets = logits_pair()
    stats, top = drift.exact(base, cand, targets, k=16)
    lp, lq = log_softmax64(base), log_softmax64(cand)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1)
    np.testing.assert_allclose(stats.kld, kld, rtol=1e-4, atol=1e-6)
    assert np.array_equal(stats.top1, base.argmax(1) == cand.argmax(1))
    rows = np.arange(base.shape[0])
    top_b = base.argmax(1)
    np.testing.assert_allclose(stats.base_top_p, np.exp(lp[rows, top_b]), rtol=1e-5)
    np.testing.assert_allclose(stats.cand_p, np.exp(lq[rows, top_b]), rtol=1e-5)
    np.testing.assert_allclose(stats.cand_target_lp, lq[rows, targets], rtol=1e-5, atol=1e-5)
    # the compressed baseline: top 16 in order, tail = the rest of the mass
    order = np.argsort(-lp, axis=1)[:, :16]
    assert np.array_equal(top.ids, order)
    tail = 1 - np.exp(lp[rows[:, None], order]).sum(axis=1)
    np.testing.assert_allclose(np.exp(top.log_tail), tail, rtol=1e-4)


def test_identical_logits_give_exactly_zero() -> None:
    base, _, targets = logits_pair()
    stats, top = drift.exact(base, base.copy(), targets, k=8)
    assert np.all(stats.kld == 0) and stats.top1.all()
    cached = drift.approx(top, base.copy(), targets)
    assert np.all(cached.kld == 0) and cached.top1.all()
    summary = DriftSummary.of(cached)
    assert summary.ppl_ratio == 1.0 and summary.top_p_rms == 0.0


@pytest.mark.parametrize("k", [4, 32, 128, 512])
def test_topk_tail_form_is_a_lower_bound_that_closes_with_the_tail(k: int) -> None:
    # Synthetic logits have fat tails (half the mass outside the top 4); a language model's tail at
    # k = 64 is far thinner, and the model tests check the two forms agree within 2% there.
    base, cand, targets = logits_pair(noise=0.5)
    exact, top = drift.exact(base, cand, targets, k=k)
    approx = drift.approx(top, cand, targets)
    assert np.all(approx.kld <= exact.kld + 1e-6)  # merging outcomes never raises a KL divergence
    gap = (exact.kld - approx.kld).mean() / exact.kld.mean()
    assert gap < 1.5 * float(np.exp(top.log_tail).mean()) + 0.01
    assert np.array_equal(approx.top1, exact.top1)
    np.testing.assert_allclose(approx.cand_p, exact.cand_p, rtol=1e-5)
    np.testing.assert_allclose(approx.base_target_lp, exact.base_target_lp, rtol=1e-5, atol=1e-5)


def test_compress_equals_the_cache_form_of_exact() -> None:
    base, cand, targets = logits_pair(n=10)
    _, top = drift.exact(base, cand, targets, k=8)
    alone = drift.compress(base, targets, k=8)
    for field in ("ids", "logp", "log_tail", "target_lp"):
        assert np.array_equal(getattr(top, field), getattr(alone, field))


def test_summary_percentiles_and_perplexity() -> None:
    n = 1000
    stats = PositionStats(
        kld=np.linspace(0, 1, n),
        top1=np.arange(n) % 4 != 0,
        base_top_p=np.full(n, 0.9),
        cand_p=np.full(n, 0.8),
        base_target_lp=np.full(n, -1.0),
        cand_target_lp=np.full(n, -1.5),
    )
    s = DriftSummary.of(stats)
    assert s.tokens == n and s.mean_kld == pytest.approx(0.5) and s.max_kld == 1.0
    assert s.median_kld == pytest.approx(0.5) and s.p99_kld == pytest.approx(0.99)
    assert s.top1 == 0.75 and s.top_p_rms == pytest.approx(0.1)
    assert s.ppl_baseline == pytest.approx(np.e) and s.ppl_ratio == pytest.approx(np.exp(0.5))
