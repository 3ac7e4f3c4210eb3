"""Train the harmful-content classifier's head on the labeled safety set; report held-out precision/recall.

    python tools/train_safety_head.py [--out recipes/safety/classifier-head.npz] [--epochs 2000]

Embeds ``recipes/data/safety/harm.jsonl`` with the int8 ONNX MiniLM encoder (built into the edgekit cache
on first use) and fits a softmax regression (numpy, class-balanced, L2) on the ``train`` split only. The
L2 strength and the per-language thresholds are chosen by 5-fold cross-validation inside the train split;
the held-out split is used once, to report precision and recall of "harmful" (any hazard class) against
benign, per class and per language. The head is saved with its per-language thresholds and the sha256 of
the encoder it was trained on and of the data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekit.models.lock import Lockfile  # noqa: E402
from edgekit.safety.dataset import data_dir, read_jsonl  # noqa: E402
from edgekit.safety.encoder import ENCODER_MODEL, Encoder, encoder_dir  # noqa: E402
from edgekit.safety.filters.classifier import Head  # noqa: E402


def fit(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, epochs: int, lr: float = 20.0, l2: float = 1e-4
) -> Head:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.01, (x.shape[1], n_classes)).astype(np.float64)
    b = np.zeros(n_classes)
    counts = np.bincount(y, minlength=n_classes)
    sample_w = (len(y) / (n_classes * np.maximum(counts, 1)))[y]
    onehot = np.eye(n_classes)[y]
    for _ in range(epochs):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * sample_w[:, None] / len(y)
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(axis=0)
    return Head(w.astype(np.float32), b.astype(np.float32), [], {})


def out_of_fold(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, epochs: int, l2: float, folds: int = 5
) -> np.ndarray:
    """Class probabilities for each training example from a head that did not see it (k-fold)."""
    fold = np.arange(len(y)) % folds
    probs = np.zeros((len(y), n_classes))
    for k in range(folds):
        head = fit(x[fold != k], y[fold != k], n_classes, epochs=epochs, l2=l2)
        probs[fold == k] = head.probabilities(x[fold == k].astype(np.float32))
    return probs


def f1(harm: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    flagged = harm >= threshold
    tp = float((flagged & truth).sum())
    return 2 * tp / max(float(flagged.sum() + truth.sum()), 1.0)


def calibrate(
    x: np.ndarray, y: np.ndarray, langs: list[str], n_classes: int, epochs: int
) -> tuple[float, dict[str, float]]:
    """On the train split only: the L2 strength with the best out-of-fold F1 at 0.5, then per language the
    threshold with the best out-of-fold F1 (languages with fewer than 12 examples keep 0.5)."""
    truth = y != 0
    best = max((f1(1 - out_of_fold(x, y, n_classes, epochs=epochs, l2=l2)[:, 0], truth, 0.5), l2)
               for l2 in (1e-4, 1e-3, 1e-2))  # fmt: skip
    l2 = best[1]
    harm = 1 - out_of_fold(x, y, n_classes, epochs=epochs, l2=l2)[:, 0]
    thresholds = {}
    for lang in sorted(set(langs)):
        idx = np.array([g == lang for g in langs])
        if idx.sum() < 12:
            continue
        grid = np.round(np.arange(0.3, 0.96, 0.05), 2)
        thresholds[lang] = float(max(grid, key=lambda t: (f1(harm[idx], truth[idx], t), -abs(t - 0.5))))
    return l2, thresholds


def report(
    probs: np.ndarray,
    rows: list[dict[str, str]],
    classes: list[str],
    threshold: float,
    per_lang_t: dict[str, float],
) -> dict[str, object]:
    truth = np.array([r["label"] != "benign" for r in rows])
    limits = np.array([per_lang_t.get(r["lang"], threshold) for r in rows])
    flagged = (1.0 - probs[:, 0]) >= limits
    tp = int((flagged & truth).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    per_class = {}
    for k, c in enumerate(classes[1:], 1):
        idx = [i for i, r in enumerate(rows) if r["label"] == c]
        per_class[c] = {
            "n": len(idx),
            "flagged": float(flagged[idx].mean()) if idx else None,
            "right_class": float((probs[idx].argmax(axis=1) == k).mean()) if idx else None,
        }
    per_lang = {}
    for lang in sorted({r["lang"] for r in rows}):
        idx = np.array([r["lang"] == lang for r in rows])
        t, f = truth[idx], flagged[idx]
        per_lang[lang] = {
            "n": int(idx.sum()),
            "recall": float((t & f).sum() / max(t.sum(), 1)),
            "false_positive_rate": float((~t & f).sum() / max((~t).sum(), 1)),
        }
    return {"threshold": threshold, "thresholds": per_lang_t, "n": len(rows), "precision": precision,
            "recall": recall,
            "false_positive_rate": float((flagged & ~truth).sum() / max(int((~truth).sum()), 1)),
            "per_class": per_class, "per_language": per_lang}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=data_dir() / "harm.jsonl")
    ap.add_argument("--out", type=Path, default=ROOT / "recipes" / "safety" / "classifier-head.npz")
    ap.add_argument("--epochs", type=int, default=2000)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()

    train, heldout = read_jsonl(args.data, "train"), read_jsonl(args.data, "heldout")
    classes = ["benign", *sorted({r["label"] for r in train} - {"benign"})]
    encoder = Encoder(encoder_dir())
    x_train = encoder.embed([r["text"] for r in train]).astype(np.float64)
    y_train = np.array([classes.index(r["label"]) for r in train])
    langs = [r["lang"] for r in train]
    l2, thresholds = calibrate(x_train, y_train, langs, len(classes), args.epochs)
    head = fit(x_train, y_train, len(classes), epochs=args.epochs, l2=l2)
    head.classes = classes
    lock = Lockfile.load(ROOT / "models.lock")
    head.meta = {
        "encoder_model": ENCODER_MODEL,
        "encoder_source_sha256": lock.get(ENCODER_MODEL).sha256,
        "encoder_onnx_sha256": encoder.sha256,
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "train_examples": str(len(train)),
        "heldout_examples": str(len(heldout)),
        "l2": str(l2),
        **{f"threshold.{lang}": f"{t:.2f}" for lang, t in thresholds.items()},
    }
    train_acc = float((head.probabilities(x_train.astype(np.float32)).argmax(axis=1) == y_train).mean())
    probs = head.probabilities(encoder.embed([r["text"] for r in heldout]))
    result = report(probs, heldout, classes, args.threshold, thresholds)
    head.meta["heldout_precision"] = f"{result['precision']:.4f}"
    head.meta["heldout_recall"] = f"{result['recall']:.4f}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    head.save(tmp)
    tmp.replace(args.out)
    print(json.dumps({"train_examples": len(train), "train_accuracy": train_acc, "heldout": result,
                      "saved": str(args.out), "encoder_onnx_sha256": encoder.sha256}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
