"""A learned acceptance model: should the cascade keep this local answer?

Logistic regression over evidence available at decision time:
- the local answer's confidence signals (mean and minimum chosen-token probability, mean entropy) and
  sizes (answer tokens, prompt words, share of digits), free during generation;
- optionally, ``agreement``: how far the answer agrees with a second local model's answer to the same
  request (the tier's ``cross_check``; one more local generation);
- optionally, ``neighbours_right``: how often the local model was right on the k most similar training
  prompts (cosine similarity of sentence embeddings from the on-device MiniLM encoder, RouteLLM-style).
It predicts the probability that the local answer is right; a tier accepts when that score reaches
``accept.min_score`` (by default the threshold calibrated with the model).

Trained only on the calibration split of the router's labeled set (``tools/train_router_gate.py``),
saved as JSON (with the training prompts' embeddings when it uses neighbours). The neighbour feature of
each training item is computed without that item (leave-one-out), so the regression does not learn to
trust a neighbour that is the item itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgekit.cascade.policy import PolicyError

Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> (n, dim) L2-normalized embeddings."""

DENSE = ("mean_prob", "min_prob", "mean_entropy", "answer_tokens", "prompt_words", "digit_share")
AGREEMENT = "agreement"
NEIGHBOURS = "neighbours_right"
_WORD = re.compile(r"\w+")
T = TypeVar("T")


def feature_layout(*, agreement: bool, neighbours: bool) -> tuple[str, ...]:
    """DENSE, then the optional features in this order."""
    return (*DENSE, *((AGREEMENT,) if agreement else ()), *((NEIGHBOURS,) if neighbours else ()))


def answer_agreement(prompt: str, answer: str, other: str) -> float:
    """Overlap (Jaccard) of the words two answers add beyond the prompt's words.

    Answers that add nothing agree on nothing (0.0): on the router set's calibration split, every local
    answer that only repeated the prompt's words was wrong.
    """
    asked = set(_WORD.findall(prompt.lower()))
    a = {w for w in _WORD.findall(answer.lower()) if w not in asked}
    b = {w for w in _WORD.findall(other.lower()) if w not in asked}
    return len(a & b) / len(a | b) if a | b else 0.0


@dataclass(frozen=True)
class Evidence:
    """What the acceptance model sees for one request."""

    prompt: str
    mean_prob: float
    min_prob: float
    mean_entropy: float
    answer_tokens: int
    agreement: float | None = None
    """With a cross-check model: ``answer_agreement`` of the local answer with its answer."""


def default_embed() -> Embed:
    """The on-device MiniLM encoder (int8 ONNX, built and verified on first use by the model store)."""
    from edgekit.runtime.encoder import shared_encoder

    return shared_encoder().embed


def _dense(e: Evidence) -> list[float]:
    words = _WORD.findall(e.prompt.lower())
    return [
        e.mean_prob,
        e.min_prob,
        e.mean_entropy,
        math.log1p(e.answer_tokens),
        math.log1p(len(words)),
        sum(ch.isdigit() for ch in e.prompt) / max(1, len(e.prompt)),
    ]


def neighbours_right(
    queries: np.ndarray, bank: np.ndarray, right: np.ndarray, k: int, *, exclude_self: bool = False
) -> np.ndarray:
    """Similarity-weighted share of right local answers among each query's k nearest bank items.

    Smoothed toward 0.5 (one pseudo-count), so an item with no similar neighbour gets no strong vote.
    """
    sims = queries @ bank.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    k = min(k, bank.shape[0] - (1 if exclude_self else 0))
    top = np.argsort(-sims, axis=1)[:, :k]
    w = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0)
    return np.asarray((np.sum(w * right[top], axis=1) + 0.5) / (w.sum(axis=1) + 1.0))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 50) -> np.ndarray:
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


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))


def feature_columns(evidence: Sequence[Evidence], features: Sequence[str]) -> np.ndarray:
    """DENSE columns, plus agreement when the layout has it (neighbours are added by the caller)."""
    rows = []
    for e in evidence:
        row = _dense(e)
        if AGREEMENT in features:
            if e.agreement is None:
                raise ValueError("the model uses cross-check agreement, but no agreement was measured")
            row.append(e.agreement)
        rows.append(row)
    width = len(DENSE) + (AGREEMENT in features)
    return np.array(rows, dtype=float).reshape(len(evidence), width)


@dataclass(frozen=True)
class AcceptModel:
    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    bank: np.ndarray
    """Embeddings of the training prompts (empty when the model does not use neighbours)."""
    right: np.ndarray
    """Whether the local answer was right, per training prompt."""
    k: int = 3
    l2: float = 3.0
    trained_on: str = ""
    """What it was trained on (data file sha256 and split), for provenance."""
    features: tuple[str, ...] = feature_layout(agreement=False, neighbours=True)
    threshold: float | None = None
    """The score threshold calibrated with the model (the tier's default ``min_score``)."""

    @property
    def uses_neighbours(self) -> bool:
        return NEIGHBOURS in self.features

    @property
    def uses_agreement(self) -> bool:
        return AGREEMENT in self.features

    @classmethod
    def fit(
        cls,
        evidence: Sequence[Evidence],
        right: Sequence[bool],
        embeddings: np.ndarray | None = None,
        *,
        features: tuple[str, ...] = feature_layout(agreement=False, neighbours=True),
        k: int = 3,
        l2: float = 3.0,
        trained_on: str = "",
    ) -> AcceptModel:
        if len(evidence) < max(4, k + 1) or len(set(right)) < 2:
            raise ValueError(
                f"need at least {max(4, k + 1)} examples with both right and wrong local answers"
            )
        y = np.asarray(right, dtype=float)
        x = feature_columns(evidence, features)
        bank = np.zeros((0, 0), dtype=np.float32)
        if NEIGHBOURS in features:
            if embeddings is None:
                raise ValueError("the neighbours feature needs prompt embeddings")
            bank = np.asarray(embeddings, dtype=np.float32)
            x = np.column_stack([x, neighbours_right(bank, bank, y, k, exclude_self=True)])
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        w = fit_logistic(with_bias((x - mean) / std), y, l2)
        return cls(w, mean, std, bank, y if NEIGHBOURS in features else y[:0], k, l2, trained_on, features)

    def with_threshold(self, threshold: float) -> AcceptModel:
        return replace(self, threshold=threshold)

    def scores(self, evidence: Sequence[Evidence], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Probability that each local answer is right (``embeddings``: of the evidence's prompts, needed
        only when the model uses neighbours)."""
        x = feature_columns(evidence, self.features)
        if self.uses_neighbours:
            if embeddings is None:
                raise ValueError("the neighbours feature needs prompt embeddings")
            queries = np.asarray(embeddings, dtype=np.float32)
            x = np.column_stack([x, neighbours_right(queries, self.bank, self.right, self.k)])
        return sigmoid(with_bias((x - self.mean) / self.std) @ self.weights)

    def score(self, evidence: Evidence, embed: Embed) -> float:
        emb = embed([evidence.prompt]) if self.uses_neighbours else None
        return float(self.scores([evidence], emb)[0])

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "edgekit.accept-model",
                "version": 3,
                "features": list(self.features),
                "k": self.k,
                "l2": self.l2,
                "threshold": self.threshold,
                "trained_on": self.trained_on,
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
                "weights": self.weights.tolist(),
                "right": self.right.astype(int).tolist(),
                "bank": [[round(float(v), 5) for v in row] for row in self.bank],
            }
        )

    @classmethod
    def load(cls, path: Path) -> AcceptModel:
        return load_model_json(
            path, "edgekit.accept-model", "accept model", "tools/train_router_gate.py", cls._parse
        )

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> AcceptModel:
        features = tuple(data.get("features") or ())
        extras = features[len(DENSE) :]
        if data.get("version") != 3 or features[: len(DENSE)] != DENSE or extras not in _EXTRAS:
            raise ValueError("made by another edgekit version")
        bank = np.asarray(data["bank"], dtype=np.float32)
        threshold = data.get("threshold")
        model = cls(
            np.asarray(data["weights"], dtype=float),
            np.asarray(data["mean"], dtype=float),
            np.asarray(data["std"], dtype=float),
            bank if bank.size else np.zeros((0, 0), dtype=np.float32),
            np.asarray(data["right"], dtype=float),
            int(data["k"]),
            float(data["l2"]),
            str(data.get("trained_on", "")),
            features,
            None if threshold is None else float(threshold),
        )
        n = len(features)
        if model.weights.shape != (n + 1,) or model.mean.shape != (n,) or model.std.shape != (n,):
            raise ValueError("weights do not match the feature layout")
        if model.uses_neighbours and (
            model.bank.ndim != 2 or model.bank.shape[0] != model.right.shape[0] or model.k < 1
        ):
            raise ValueError("training embeddings and labels do not match")
        return model


def load_model_json(path: Path, kind: str, what: str, tool: str, parse: Callable[[dict[str, Any]], T]) -> T:
    """A model saved as JSON by one of the router's tools, or a PolicyError naming the file and the tool
    that makes it: unreadable, not JSON, another ``kind``, or a body ``parse`` rejects (ValueError,
    KeyError, TypeError)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("kind") != kind:
            raise ValueError(f"not an edgekit {what}")
        return parse(data)
    except OSError as e:
        raise PolicyError(f"{path}: cannot read the {what} ({e.strerror})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise PolicyError(f"{path}: bad {what}: {e}", f"Retrain it with {tool}.") from None


_EXTRAS = {(), (AGREEMENT,), (NEIGHBOURS,), (AGREEMENT, NEIGHBOURS)}


def with_bias(x: np.ndarray) -> np.ndarray:
    """x with a column of ones appended (the bias term of a logistic regression)."""
    return np.hstack([x, np.ones((x.shape[0], 1))])


def leave_one_out_scores(
    evidence: Sequence[Evidence],
    right: Sequence[bool],
    embeddings: np.ndarray | None = None,
    *,
    features: tuple[str, ...] = feature_layout(agreement=False, neighbours=True),
    k: int = 3,
) -> np.ndarray:
    """Held-out scores for every item (each from a model fit without it): honest threshold selection."""
    out = np.zeros(len(evidence))
    emb = None if embeddings is None else np.asarray(embeddings)
    for i in range(len(evidence)):
        keep = [j for j in range(len(evidence)) if j != i]
        labels = [right[j] for j in keep]
        if len(set(labels)) < 2:
            out[i] = float(labels[0]) if labels else 0.5
            continue
        model = AcceptModel.fit(
            [evidence[j] for j in keep],
            labels,
            None if emb is None else emb[keep],
            features=features,
            k=k,
        )
        out[i] = model.scores([evidence[i]], None if emb is None else emb[[i]])[0]
    return out
