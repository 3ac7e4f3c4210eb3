"""A probe of the local model's own state: is this answer right, read from its last hidden layer?

Token probability and entropy are weak confidence signals for a 135M model: it is most sure of itself
when it rambles. The model's last-layer hidden states over the prompt and its answer carry more: a linear
probe on them (L2-regularized logistic regression, numpy only) predicts "the local answer is right".
The state is read in one batched pass over prompt + answer after generation (``answer_state``), pooled as
the mean over the answer's positions and the last position, concatenated.

Trained only on the calibration split of the router set (``tools/router_probe.py``), saved as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.cascade.learned import fit_logistic, load_model_json, sigmoid, with_bias
from edgekit.runtime.types import ChatMessage


def answer_state(backend: Any, msgs: Sequence[ChatMessage], answer: str) -> np.ndarray:
    """[mean over the answer's positions, last position] of the last layer's hidden states for the chat
    prompt followed by ``answer`` (re-tokenized, so saved answers and live ones are read alike)."""
    prompt = backend.prompt_tokens(msgs)
    reply = backend.tokenize(answer, special=False) if answer else []
    states = backend.hidden_states([*prompt, *reply])
    body = states[len(prompt) :] if reply else states[-1:]
    return np.concatenate([body.mean(axis=0), states[-1]]).astype(np.float32)


@dataclass(frozen=True)
class Probe:
    weights: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    l2: float
    trained_on: str = ""

    @classmethod
    def fit(cls, states: np.ndarray, right: Sequence[bool], *, l2: float, trained_on: str = "") -> Probe:
        y = np.asarray(right, dtype=float)
        if states.shape[0] < 4 or len(set(y.tolist())) < 2:
            raise ValueError("need at least 4 examples with both right and wrong answers")
        mean, std = states.mean(axis=0), states.std(axis=0) + 1e-4
        return cls(fit_logistic(with_bias((states - mean) / std), y, l2), mean, std, l2, trained_on)

    def scores(self, states: np.ndarray) -> np.ndarray:
        return sigmoid(with_bias((np.atleast_2d(states) - self.mean) / self.std) @ self.weights)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": "edgekit.state-probe",
                "version": 1,
                "l2": self.l2,
                "trained_on": self.trained_on,
                "mean": [round(float(v), 6) for v in self.mean],
                "std": [round(float(v), 6) for v in self.std],
                "weights": [round(float(v), 8) for v in self.weights],
            }
        )

    @classmethod
    def load(cls, path: Path) -> Probe:
        return load_model_json(
            path, "edgekit.state-probe", "state probe", "tools/router_probe.py", cls._parse
        )

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> Probe:
        if data.get("version") != 1:
            raise ValueError("made by another edgekit version")
        probe = cls(
            np.asarray(data["weights"], dtype=float),
            np.asarray(data["mean"], dtype=float),
            np.asarray(data["std"], dtype=float),
            float(data["l2"]),
            str(data.get("trained_on", "")),
        )
        if probe.mean.shape != probe.std.shape or probe.weights.shape != (probe.mean.shape[0] + 1,):
            raise ValueError("weights do not match the state width")
        return probe


def cross_fitted(states: np.ndarray, right: Sequence[bool], *, l2: float, folds: int = 5) -> np.ndarray:
    """Held-out probe scores for every example (each fold scored by a probe fit on the others, folds by
    position modulo ``folds``): honest scores for choosing ``l2`` and for a model stacked on the probe."""
    y = np.asarray(right, dtype=bool)
    out = np.zeros(len(y))
    for k in range(folds):
        held = np.arange(len(y)) % folds == k
        out[held] = Probe.fit(states[~held], y[~held], l2=l2).scores(states[held])
    return out


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance a right answer scores above a wrong one (ties count half)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if not pos.size or not neg.size:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))
