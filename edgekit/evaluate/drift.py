"""Drift metrics: how far the candidate's next-token distributions moved from the baseline's.

Per scored position (all arrays are [n]):

- ``kld``: KL(P_baseline || Q_candidate) in nats.
- ``top1``: whether both models rank the same token first.
- ``base_top_p`` / ``cand_p``: the baseline's probability of its own top token and the candidate's
  probability of that same token (their difference gives the RMS of the change, "top_p_rms").
- ``base_target_lp`` / ``cand_target_lp``: log-probability of the token that actually follows (perplexity).

Two ways to get ``kld``:

- **exact** (both models scored in the same run): the sum over the full vocabulary.
- **top-k + tail** (baseline read from the cache): the baseline is kept as its ``k`` most likely tokens
  plus one bucket holding the rest of its mass (``TopK``). The candidate's distribution is folded into
  the same ``k + 1`` bins and the KL divergence is taken over the bins. Merging outcomes never increases
  a KL divergence, so this is a lower bound on the exact value; the gap is the baseline's tail mass times
  the divergence between the two tails. Small models spread their mass widely: measured on SmolLM2-135M
  Q4_1 against a Q2_K requantization (prose, 256 positions, exact mean 0.390 nats), the top-k form gives
  0.320 at k = 64, 0.356 at k = 256, 0.378 at k = 1024 and 0.388 at k = 4096. Suites default to
  k = 1024 (about 8 KB per position, 2% of this vocabulary); tests check the two forms agree closely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_TINY = 1e-30  # floor for bucket masses, so an empty tail gives log(0) of neither side
_LOG_TINY = float(np.log(_TINY))


@dataclass(frozen=True)
class TopK:
    """The baseline's distribution at n positions, compressed: what the cache stores."""

    ids: np.ndarray
    """int32 [n, k], most likely first."""
    logp: np.ndarray
    """float32 [n, k]: log-probabilities of ``ids``."""
    log_tail: np.ndarray
    """float32 [n]: log of the probability mass outside the top k (floored at log 1e-30)."""
    target_lp: np.ndarray
    """float32 [n]: log-probability of the token that follows."""

    @property
    def n(self) -> int:
        return int(self.log_tail.size)

    @classmethod
    def concat(cls, parts: Sequence[TopK]) -> TopK:
        return cls(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.logp for p in parts]),
            np.concatenate([p.log_tail for p in parts]),
            np.concatenate([p.target_lp for p in parts]),
        )

    def rows(self, start: int, stop: int) -> TopK:
        return TopK(
            self.ids[start:stop], self.logp[start:stop], self.log_tail[start:stop], self.target_lp[start:stop]
        )


@dataclass(frozen=True)
class PositionStats:
    kld: np.ndarray
    top1: np.ndarray
    base_top_p: np.ndarray
    cand_p: np.ndarray
    base_target_lp: np.ndarray
    cand_target_lp: np.ndarray

    @classmethod
    def concat(cls, parts: Sequence[PositionStats]) -> PositionStats:
        fields = ("kld", "top1", "base_top_p", "cand_p", "base_target_lp", "cand_target_lp")
        if not parts:
            return cls(*(np.zeros(0, dtype=np.bool_ if f == "top1" else np.float64) for f in fields))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


class _Dist:
    """Softmax pieces of one logits block, computed once: exp(x - max) and its row sums."""

    def __init__(self, logits: np.ndarray) -> None:
        self.x = np.asarray(logits, dtype=np.float32)
        peak = self.x.max(axis=1, keepdims=True)
        self.e = np.exp(self.x - peak)
        self.s = self.e.sum(axis=1, dtype=np.float64)
        self.lse = peak[:, 0].astype(np.float64) + np.log(self.s)
        self.rows = np.arange(self.x.shape[0])

    def logp_at(self, ids: np.ndarray) -> np.ndarray:
        """float32 log-probabilities at ids ([n] or [n, k])."""
        if ids.ndim == 1:
            return (self.x[self.rows, ids] - self.lse).astype(np.float32)
        return (np.take_along_axis(self.x, ids, axis=1) - self.lse[:, None]).astype(np.float32)

    def log_mass_outside(self, ids: np.ndarray) -> np.ndarray:
        """float32 log of the probability mass not on ``ids`` [n, k], without 1 - sum cancellation."""
        inside = np.take_along_axis(self.e, ids, axis=1).sum(axis=1, dtype=np.float64)
        tail = np.maximum(self.s - inside, 0.0) / self.s
        return np.log(np.maximum(tail, _TINY)).astype(np.float32)


def _check(base: np.ndarray, cand: np.ndarray, targets: np.ndarray) -> None:
    if base.shape != cand.shape:
        raise ValueError(f"logits shapes differ: {base.shape} vs {cand.shape}")
    if base.shape[0] != targets.shape[0]:
        raise ValueError("one target per scored position is needed")


def _top_k(d: _Dist, targets: np.ndarray, k: int) -> TopK:
    k = min(k, d.x.shape[1])
    ids = np.argpartition(d.x, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(d.x, ids, axis=1), axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    return TopK(ids.astype(np.int32), d.logp_at(ids), d.log_mass_outside(ids), d.logp_at(targets))


def compress(logits: np.ndarray, targets: np.ndarray, k: int) -> TopK:
    """The baseline's top-k log-probabilities, tail bucket and target log-probabilities."""
    return _top_k(_Dist(logits), targets, k)


def exact(base: np.ndarray, cand: np.ndarray, targets: np.ndarray, k: int) -> tuple[PositionStats, TopK]:
    """Stats over the full vocabulary, plus the baseline compressed for the cache."""
    _check(base, cand, targets)
    b, c = _Dist(base), _Dist(cand)
    # KL(P||Q) = sum p (lp - lq) = sum p (x_b - x_c) - lse_b + lse_c, since sum p = 1.
    cross = np.einsum("ij,ij->i", b.e, b.x - c.x, dtype=np.float64) / b.s
    kld = np.maximum(cross - b.lse + c.lse, 0.0)
    top_b = b.x.argmax(axis=1)
    stats = PositionStats(
        kld=kld,
        top1=top_b == c.x.argmax(axis=1),
        base_top_p=np.exp(b.logp_at(top_b).astype(np.float64)),
        cand_p=np.exp(c.logp_at(top_b).astype(np.float64)),
        base_target_lp=b.logp_at(targets).astype(np.float64),
        cand_target_lp=c.logp_at(targets).astype(np.float64),
    )
    return stats, _top_k(b, targets, k)


def approx(top: TopK, cand: np.ndarray, targets: np.ndarray) -> PositionStats:
    """Stats against a cached baseline: KL over the baseline's top-k tokens plus one tail bucket."""
    c = _Dist(cand)
    if c.x.shape[0] != top.n or targets.shape[0] != top.n:
        raise ValueError("cached baseline and candidate cover different positions")
    ids = top.ids.astype(np.intp)
    lq = c.logp_at(ids).astype(np.float64)
    lq_tail = c.log_mass_outside(ids).astype(np.float64)
    lp = top.logp.astype(np.float64)
    lp_tail = top.log_tail.astype(np.float64)
    p_tail = np.where(lp_tail <= _LOG_TINY, 0.0, np.exp(lp_tail))
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1) + p_tail * (lp_tail - lq_tail)
    top_b = ids[:, 0]
    return PositionStats(
        kld=np.maximum(kld, 0.0),
        top1=top_b == c.x.argmax(axis=1),
        base_top_p=np.exp(lp[:, 0]),
        cand_p=np.exp(c.logp_at(top_b).astype(np.float64)),
        base_target_lp=top.target_lp.astype(np.float64),
        cand_target_lp=c.logp_at(targets).astype(np.float64),
    )


@dataclass(frozen=True)
class DriftSummary:
    """Aggregates of PositionStats over a slice or over everything."""

    tokens: int
    mean_kld: float
    median_kld: float
    p90_kld: float
    p99_kld: float
    max_kld: float
    top1: float
    top_p_rms: float
    """RMS over positions of (candidate's - baseline's) probability of the baseline's top token."""
    ppl_baseline: float
    ppl_candidate: float
    ppl_ratio: float

    @classmethod
    def of(cls, s: PositionStats) -> DriftSummary:
        n = int(s.kld.size)
        if n == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)
        q = np.percentile(s.kld, [50, 90, 99])
        ppl_b = float(np.exp(-s.base_target_lp.mean()))
        ppl_c = float(np.exp(-s.cand_target_lp.mean()))
        return cls(
            tokens=n,
            mean_kld=float(s.kld.mean()),
            median_kld=float(q[0]),
            p90_kld=float(q[1]),
            p99_kld=float(q[2]),
            max_kld=float(s.kld.max()),
            top1=float(s.top1.mean()),
            top_p_rms=float(np.sqrt(np.mean((s.cand_p - s.base_top_p) ** 2))),
            ppl_baseline=ppl_b,
            ppl_candidate=ppl_c,
            ppl_ratio=ppl_c / ppl_b,
        )

    def metric(self, name: str) -> float:
        return float(getattr(self, name))
