"""Harmful-content classifier on device: the int8 MiniLM encoder plus a softmax-regression head.

The head (``recipes/safety/classifier-head.npz``, trained by ``tools/train_safety_head.py`` on
``recipes/data/safety/``) maps a sentence embedding to ``benign`` or one of the hazard categories it was
trained on. A text is flagged when its harm probability (1 - p(benign)) reaches the threshold for its
language (policy ``[classifier.thresholds]``, else the head's own per-language thresholds, chosen by
cross-validation on the training split, else ``threshold``); the verdict names the most likely
hazard category and covers the whole text. Long texts are scored in windows of whole sentences; the
worst window counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import ModelFileError
from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import CATEGORIES, Action, Span, Verdict

if TYPE_CHECKING:
    from edgekit.safety.encoder import Encoder


SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\n+")


def windows(text: str, max_chars: int) -> list[str]:
    """Whole sentences packed into windows of at most ``max_chars`` (a longer sentence is cut): the head
    was trained on short texts, and one harmful sentence must not drown in a long benign answer."""
    out: list[str] = []
    current = ""
    for sentence in (s for s in SENTENCE_END.split(text) if s.strip()):
        for i in range(0, len(sentence), max_chars):
            part = sentence[i : i + max_chars]
            if current and len(current) + 1 + len(part) > max_chars:
                out.append(current)
                current = ""
            current = f"{current} {part}" if current else part
    if current:
        out.append(current)
    return out or [text[:max_chars]]


def default_head_path() -> Path:
    from importlib import resources

    shipped = resources.files("edgekit") / "_data" / "safety" / "classifier-head.npz"
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "recipes" / "safety" / "classifier-head.npz"


class Head:
    """Softmax regression: probabilities = softmax(x @ W + b) over ``classes`` (``benign`` first)."""

    def __init__(
        self, weights: np.ndarray, bias: np.ndarray, classes: list[str], meta: dict[str, str]
    ) -> None:
        self.weights, self.bias, self.classes, self.meta = weights, bias, classes, meta

    @classmethod
    def load(cls, path: Path) -> Head:
        try:
            with np.load(path, allow_pickle=False) as z:
                classes = [str(c) for c in z["classes"]]
                meta = {str(k): str(v) for k, v in zip(z["meta_keys"], z["meta_values"], strict=True)}
                head = cls(z["weights"].astype(np.float32), z["bias"].astype(np.float32), classes, meta)
        except (OSError, KeyError, ValueError) as e:
            raise ModelFileError(
                f"{path}: not a classifier head ({e})", "Train one with: python tools/train_safety_head.py"
            ) from None
        unknown = [c for c in classes if c != "benign" and c not in CATEGORIES]
        if classes[:1] != ["benign"] or unknown:
            raise ModelFileError(
                f"{path}: head classes must be 'benign' then taxonomy categories, got {classes}"
            )
        return head

    def save(self, path: Path) -> None:
        keys = sorted(self.meta)
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float32),
            bias=self.bias.astype(np.float32),
            classes=np.array(self.classes),
            meta_keys=np.array(keys),
            meta_values=np.array([self.meta[k] for k in keys]),
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weights + self.bias
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out


class HarmClassifier:
    name = "classifier"
    window = -1

    def __init__(
        self,
        *,
        head: Path | None = None,
        threshold: float = 0.5,
        thresholds: dict[str, float] | None = None,
        max_chars: int = 400,
        encoder: Encoder | None = None,
        action: Action = "block",
    ) -> None:
        self.head = Head.load(head or default_head_path())
        self.threshold = threshold
        self.thresholds = dict(thresholds or {})
        self.max_chars = max_chars
        self.action = action
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from edgekit.safety.encoder import shared_encoder

            self._encoder = shared_encoder()
        return self._encoder

    def info(self) -> dict[str, Any]:
        """The head's training facts and whether the encoder in use is the one it was trained on."""
        return {**self.head.meta, "encoder_in_use_sha256": self.encoder.sha256,
                "same_encoder": self.head.meta.get("encoder_onnx_sha256") == self.encoder.sha256}  # fmt: skip

    def harm(self, texts: list[str]) -> np.ndarray:
        """Per text: class probabilities (rows sum to 1; column 0 is benign)."""
        return self.head.probabilities(self.encoder.embed(texts))

    def threshold_for(self, language: str | None) -> float:
        """The policy's threshold for this language, else the head's (chosen by cross-validation on the
        training split), else the policy's general threshold."""
        lang = language or ""
        if lang in self.thresholds:
            return self.thresholds[lang]
        calibrated = self.head.meta.get(f"threshold.{lang}")
        return float(calibrated) if calibrated else self.threshold

    def check(self, text: str, context: Context) -> list[Verdict]:
        if not text.strip():
            return []
        probs = self.harm(windows(text, self.max_chars))
        worst = int(np.argmax(1.0 - probs[:, 0]))
        p = probs[worst]
        harm = float(1.0 - p[0])
        limit = self.threshold_for(context.language)
        if harm < limit:
            return []
        k = 1 + int(np.argmax(p[1:]))
        category = self.head.classes[k]
        lang = f", language {context.language}" if context.language else ""
        reason = f"harmful-content classifier: {category} (p_harm={harm:.2f} >= {limit:.2f}{lang})"
        return [
            Verdict(
                category, self.action, (Span(0, len(text), category),), reason, score=harm, filter=self.name
            )
        ]
