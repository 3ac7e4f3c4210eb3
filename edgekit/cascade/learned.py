"""A learned acceptance model: should the cascade keep this local answer?

Logistic regression over two kinds of evidence that are free at decision time: the prompt (hashed word
unigrams and bigrams, its length, its share of digits) and the local answer's confidence signals
(mean and minimum chosen-token probability, mean entropy, answer length). It predicts the probability
that the local answer is right; a tier accepts when that score reaches ``accept.min_score``.

It is trained only on the calibration split of the router's labeled set (``tools/train_router_gate.py``)
and saved as a small JSON file that the policy names (``accept.learned``). Plain numpy: the model has a
few hundred weights, and Newton's method fits it in milliseconds.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.cascade.policy import PolicyError

HASH_DIM = 256
DENSE = ("mean_prob", "min_prob", "mean_entropy", "answer_tokens", "prompt_words", "digit_share")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Evidence:
    """What the acceptance model sees for one request."""

    prompt: str
    mean_prob: float
    min_prob: float
    mean_entropy: float
    answer_tokens: int


def _dense(e: Evidence) -> list[float]:
    words = _WORD.findall(e.prompt.lower())
    digits = sum(ch.isdigit() for ch in e.prompt)
    return [
        e.mean_prob,
        e.min_prob,
        e.mean_entropy,
        math.log1p(e.answer_tokens),
        math.log1p(len(words)),
        digits / max(1, len(e.prompt)),
    ]


def _hashed(prompt: str, dim: int) -> np.ndarray:
    words = _WORD.findall(prompt.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    v = np.zeros(dim)
    for g in set(grams):
        v[zlib.crc32(g.encode()) % dim] = 1.0
    norm = np.linalg.norm(v)
    return v / norm if norm else v


def featurize(evidence: Sequence[Evidence], dim: int = HASH_DIM) -> tuple[np.ndarray, np.ndarray]:
    """(dense features, hashed prompt features), one row per item."""
    dense = np.array([_dense(e) for e in evidence], dtype=float).reshape(len(evidence), len(DENSE))
    hashed = np.array([_hashed(e.prompt, dim) for e in evidence]).reshape(len(evidence), dim)
    return dense, hashed


def _fit(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
    """L2-regularized logistic regression by Newton's method; the last column of x is the bias."""
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[-1] = 0.0  # do not shrink the bias
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


@dataclass(frozen=True)
class AcceptModel:
    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    dim: int = HASH_DIM
    l2: float = 1.0
    trained_on: str = ""
    """What it was trained on (data file sha256 and split), for provenance."""

    @classmethod
    def fit(
        cls, evidence: Sequence[Evidence], right: Sequence[bool], *, l2: float = 1.0, trained_on: str = ""
    ) -> AcceptModel:
        if len(evidence) < 4 or len(set(right)) < 2:
            raise ValueError("need at least 4 examples with both right and wrong local answers")
        dense, hashed = featurize(evidence)
        mean, std = dense.mean(axis=0), dense.std(axis=0) + 1e-6
        x = _design((dense - mean) / std, hashed)
        w = _fit(x, np.asarray(right, dtype=float), l2)
        return cls(w, mean, std, HASH_DIM, l2, trained_on)

    def scores(self, evidence: Sequence[Evidence]) -> np.ndarray:
        """Probability that each local answer is right."""
        dense, hashed = featurize(evidence, self.dim)
        x = _design((dense - self.mean) / self.std, hashed)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x @ self.weights, -30, 30))))

    def score(self, evidence: Evidence) -> float:
        return float(self.scores([evidence])[0])

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "edgekit.accept-model",
                "version": 1,
                "features": {"dense": list(DENSE), "hashed_dim": self.dim},
                "l2": self.l2,
                "trained_on": self.trained_on,
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "weights": self.weights.tolist(),
            },
            indent=1,
        )

    @classmethod
    def load(cls, path: Path) -> AcceptModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("kind") != "edgekit.accept-model" or data.get("version") != 1:
                raise ValueError("not an edgekit accept model (version 1)")
            dim = int(data["features"]["hashed_dim"])
            model = cls(
                np.asarray(data["weights"], dtype=float),
                np.asarray(data["mean"], dtype=float),
                np.asarray(data["std"], dtype=float),
                dim,
                float(data.get("l2", 1.0)),
                str(data.get("trained_on", "")),
            )
            if model.weights.shape != (len(DENSE) + dim + 1,) or model.mean.shape != (len(DENSE),):
                raise ValueError("weights do not match the feature layout")
        except OSError as e:
            raise PolicyError(f"{path}: cannot read the accept model ({e.strerror})") from None
        except (ValueError, KeyError, TypeError) as e:
            raise PolicyError(
                f"{path}: bad accept model: {e}", "Retrain it with tools/train_router_gate.py."
            ) from None
        return model


def _design(dense: np.ndarray, hashed: np.ndarray) -> np.ndarray:
    return np.hstack([dense, hashed, np.ones((dense.shape[0], 1))])


def leave_one_out_scores(
    evidence: Sequence[Evidence], right: Sequence[bool], *, l2: float = 1.0
) -> np.ndarray:
    """Held-out scores for every item (each from a model fit without it): honest threshold selection."""
    out = np.zeros(len(evidence))
    for i in range(len(evidence)):
        rest = [e for j, e in enumerate(evidence) if j != i]
        labels = [r for j, r in enumerate(right) if j != i]
        if len(set(labels)) < 2:
            out[i] = float(labels[0]) if labels else 0.5
            continue
        out[i] = AcceptModel.fit(rest, labels, l2=l2).score(evidence[i])
    return out
