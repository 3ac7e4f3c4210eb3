"""Harmful content, jailbreaks and injected instructions, judged on device: a sentence encoder plus small
trained heads over its embeddings.

The head file (``recipes/safety/classifier-head.npz``, written by ``tools/train_safety_classifier.py``)
holds three heads, each a softmax over its classes with ``benign`` first, and the thresholds chosen for
them on a calibration split from a false-positive budget:

- ``hazard``: ``benign`` or one of the 14 MLCommons hazard categories (Llama Guard 3's S1..S14). Runs at
  every layer the classifier is enabled for.
- ``jailbreak``: a user's attempt to get around the assistant's rules (personas without rules, refusal
  suppression, prompt extraction). Input layer.
- ``injection``: instructions planted in a retrieved document, addressed to the model instead of the
  reader. Context layer. Its input is a window's embedding and that embedding's difference from the mean
  of the document's other windows (``contrast``): a planted instruction stands out from the text around
  it, and that difference lifted recall at the same false-positive budget on the calibration split.

A text is scored in windows of whole sentences (``windows``); the worst window counts. A head's score is
``1 - p(benign)``. At or above its ``escalate`` threshold the filter reports a verdict; it proposes
``block`` only at or above the ``block`` threshold, and ``escalate`` (the safer path: a doubtful case
costs a remote call, not a refused user) in between. The policy's action for the category still applies;
the guard never lets a doubtful verdict block.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import ModelFileError
from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import HAZARDS, Action, Span, Verdict

if TYPE_CHECKING:
    from edgekit.runtime.encoder import Encoder

PARAGRAPH = re.compile(r"\n\s*\n")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])\s*|\n+")
HEADS = ("hazard", "jailbreak", "injection")
LAYER_HEADS: dict[str, tuple[str, ...]] = {
    "input": ("hazard", "jailbreak"),
    "context": ("hazard", "injection"),
}
"""Heads per enforcement point; any other layer (output) runs the hazard head alone."""


def windows(text: str, max_chars: int) -> list[str]:
    """Whole sentences packed into windows of at most ``max_chars`` (a longer sentence is cut), never
    across a blank line: the heads were trained on windows, and one harmful paragraph must not drown in
    a long benign answer."""
    out: list[str] = []
    for paragraph in PARAGRAPH.split(text):
        current = ""
        for sentence in (s.strip() for s in SENTENCE_END.split(paragraph)):
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


def contrast(x: np.ndarray) -> np.ndarray:
    """Per window of one text: its embedding minus the mean of the other windows (zero when alone)."""
    n = len(x)
    if n < 2:
        return np.zeros_like(x)
    others: np.ndarray = (x.sum(axis=0, keepdims=True) - x) / (n - 1)
    return x - others


@dataclass
class Head:
    """Dense layers (ReLU between them), then a softmax over ``classes`` (``benign`` first).

    ``context``: the input is ``[window, contrast(windows)]`` (twice the embedding width), not the window
    alone."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    escalate: float
    block: float
    context: bool = False

    def features(self, windows: np.ndarray) -> np.ndarray:
        """The head's input for the embedded windows of one text."""
        return np.concatenate([windows, contrast(windows)], axis=1) if self.context else windows

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities per row of ``x`` (already ``features``)."""
        z = x.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            z = z @ w + b
            if i < len(self.layers) - 1:
                z = np.maximum(z, 0.0)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out


@dataclass
class Heads:
    heads: dict[str, Head]
    meta: dict[str, str]

    @property
    def encoder_model(self) -> str:
        return self.meta.get("encoder_model", "")

    @property
    def max_chars(self) -> int:
        return int(self.meta.get("window_chars", "400"))

    @classmethod
    def load(cls, path: Path) -> Heads:
        hint = "Point [classifier] head at a file from tools/train_safety_classifier.py, or drop the key."
        try:
            with Path(path).open("rb") as f, np.load(f, allow_pickle=False) as z:
                meta = {str(k): str(v) for k, v in zip(z["meta_keys"], z["meta_values"], strict=True)}
                heads = {}
                for name in HEADS:
                    n = int(meta[f"{name}.layers"])
                    layers = [
                        (z[f"{name}.{i}.w"].astype(np.float32), z[f"{name}.{i}.b"].astype(np.float32))
                        for i in range(n)
                    ]
                    heads[name] = Head(
                        layers,
                        [str(c) for c in z[f"{name}.classes"]],
                        float(meta[f"{name}.escalate"]),
                        float(meta[f"{name}.block"]),
                        meta.get(f"{name}.input", "window") == "window+contrast",
                    )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise ModelFileError(f"{path}: not a safety classifier head file ({e})", hint) from None
        for name, head in heads.items():
            allowed = set(HAZARDS.values()) if name == "hazard" else {"prompt_injection"}
            if head.classes[:1] != ["benign"] or not set(head.classes[1:]) <= allowed:
                raise ModelFileError(f"{path}: head '{name}' has classes {head.classes}", hint)
        return cls(heads, meta)

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        meta = dict(self.meta)
        for name, head in self.heads.items():
            meta.update(
                {
                    f"{name}.layers": str(len(head.layers)),
                    f"{name}.escalate": f"{head.escalate:.6f}",
                    f"{name}.block": f"{head.block:.6f}",
                    f"{name}.input": "window+contrast" if head.context else "window",
                }
            )
            arrays[f"{name}.classes"] = np.array(head.classes)
            for i, (w, b) in enumerate(head.layers):
                arrays[f"{name}.{i}.w"], arrays[f"{name}.{i}.b"] = w.astype(np.float32), b.astype(np.float32)
        keys = sorted(meta)
        arrays["meta_keys"], arrays["meta_values"] = np.array(keys), np.array([meta[k] for k in keys])
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


class HarmClassifier:
    name = "classifier"
    window = -1

    def __init__(
        self,
        *,
        head: Path | None = None,
        threshold: float | None = None,
        block_threshold: float | None = None,
        thresholds: dict[str, float] | None = None,
        max_chars: int | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        self.heads = Heads.load(head or default_head_path())
        self.threshold = threshold
        self.block_threshold = block_threshold
        self.thresholds = dict(thresholds or {})
        self.max_chars = max_chars or self.heads.max_chars
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from edgekit.runtime.encoder import shared_encoder

            self._encoder = shared_encoder(self.heads.encoder_model)
        return self._encoder

    def info(self) -> dict[str, Any]:
        """The heads' training facts and whether the encoder in use is the one they were trained on."""
        return {
            **self.heads.meta,
            "encoder_in_use_sha256": self.encoder.sha256,
            "same_encoder": self.heads.meta.get("encoder_onnx_sha256") == self.encoder.sha256,
        }

    def scores(self, texts: list[str], head: str = "hazard") -> np.ndarray:
        """Per text: the head's class probabilities (rows sum to 1; column 0 is benign). A context head
        reads the texts as the windows of one document."""
        h = self.heads.heads[head]
        return h.probabilities(h.features(self.encoder.embed(texts)))

    def limits(self, head: str, language: str | None) -> tuple[float, float]:
        """(escalate, block) thresholds of ``head`` for a text in ``language``. The hazard head's come from
        the policy when it sets them (per language first), else from the head file."""
        h = self.heads.heads[head]
        if head != "hazard":
            return h.escalate, h.block
        escalate = self.thresholds.get(
            language or "", self.threshold if self.threshold is not None else h.escalate
        )
        block = self.block_threshold if self.block_threshold is not None else h.block
        return escalate, max(block, escalate)

    def check(self, text: str, context: Context) -> list[Verdict]:
        if not text.strip():
            return []
        parts = windows(text, self.max_chars)
        x = self.encoder.embed(parts)
        out = []
        for name in LAYER_HEADS.get(context.layer, ("hazard",)):
            head = self.heads.heads[name]
            probs = head.probabilities(head.features(x))
            worst = int(np.argmax(1.0 - probs[:, 0]))
            p = probs[worst]
            score = float(1.0 - p[0])
            escalate, block = self.limits(name, context.language)
            if score < escalate:
                continue
            category = head.classes[1 + int(np.argmax(p[1:]))]
            action: Action = "block" if score >= block else "escalate"
            lang = f", language {context.language}" if context.language else ""
            reason = (
                f"{name} classifier: {category} (p={score:.2f} >= {escalate:.2f}{lang}"
                f"{'' if action == 'block' else f'; below {block:.2f}, escalate'})"
            )
            span = Span(0, len(text), category)
            out.append(
                Verdict(
                    category, action, (span,), reason, score=score, filter=self.name, extra=(("head", name),)
                )
            )
        return out
