"""Train the safety classifier's heads and choose their thresholds from a false-positive budget.

    python tools/train_safety_classifier.py [--encoder multilingual-e5-small-int8] [--out FILE]
        [--report report.json] [--block-budget 0.005] [--flag-budget 0.0075] [--document-budget 0.02]

Data: ``tools/safety_data.py`` (public sets in ``../shared/data/safety`` plus ``recipes/data/safety/
authored/``), split by hash into train (60%), calib (20%) and test (20%). Texts are cut into the windows
the runtime uses (``edgekit.safety.filters.classifier.windows``) and embedded once with the encoder
(cached per encoder hash under the edgekit cache). Three heads, softmax regressions fitted on train only:

- hazard: benign or one of the 14 hazard categories, on inputs (user requests);
- jailbreak: attempts to get around the assistant's rules, on inputs;
- injection: windows of retrieved documents holding a spliced attack, against clean document windows;
  its input is each window's embedding and its difference from the document's other windows
  (``classifier.contrast``). Train documents get ``ATTACKS_PER_TRAIN_DOC`` more attacked copies
  (``safety_data.more_attacks``), for variety of attacks and positions.

The L2 strength is chosen on calib (recall at the budget). Thresholds, on calib, per head: ``block`` so
that at most ``--block-budget`` of benign texts would be blocked, ``escalate`` so that at most
``--flag-budget`` of them would be flagged at all (documents: ``--document-budget`` of clean documents
flagged by the injection and hazard heads together, half of it blocked).
Figures are reported once, on test: benign flag and block rates per source, recall per hazard category
and language, jailbreak and in-document injection recall, and each category's ROC (AUROC and recall at
several false-positive rates).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import safety_data  # noqa: E402
from safety_data import Example  # noqa: E402

from edgekit.config import Settings  # noqa: E402
from edgekit.runtime.encoder import Encoder, encoder_dir  # noqa: E402
from edgekit.safety.filters.classifier import Head, Heads, contrast, windows  # noqa: E402
from edgekit.safety.taxonomy import HAZARDS  # noqa: E402

WINDOW_CHARS = 400
MAX_WINDOWS = 6
"""Windows per training text (long T0 passages would otherwise outweigh everything else)."""
ATTACKS_PER_TRAIN_DOC = 3
HAZARD_CLASSES = ["benign", *HAZARDS.values()]
HYPER = [(0, 1e-4), (256, 1e-5), (256, 1e-4)]
"""(hidden units, L2) tried per head; 0 hidden units is a linear head."""


# --- embedding, cached per encoder ------------------------------------------------------------------


def embed_all(encoder: Encoder, texts: list[str], cache: Path) -> np.ndarray:
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as z:
            known = dict(zip((str(k) for k in z["keys"]), z["vectors"], strict=True))
    todo = sorted(
        {k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items(), key=lambda kv: len(kv[1])
    )
    t0 = time.time()
    for i in range(0, len(todo), 32):
        batch = todo[i : i + 32]
        for (k, _), v in zip(batch, encoder.embed([t for _, t in batch]), strict=True):
            known[k] = v
        if (i // 32) % 50 == 0:
            print(f"  embedded {i + len(batch)}/{len(todo)} ({time.time() - t0:.0f} s)", file=sys.stderr)
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
        tmp.replace(cache)
    return np.stack([known[k] for k in keys]).astype(np.float32)


# --- units: windows of examples -----------------------------------------------------------------------


class Units:
    """Windows of examples: ``owner[i]`` is the example index of window i."""

    def __init__(self, examples: list[Example], max_windows: int | None) -> None:
        self.examples = examples
        self.texts: list[str] = []
        self.owner: list[int] = []
        self.attack: list[bool] = []
        for n, e in enumerate(examples):
            parts = windows(e.text, WINDOW_CHARS)
            for w in parts[:max_windows] if max_windows else parts:
                self.texts.append(w)
                self.owner.append(n)
                self.attack.append(_holds_attack(e, w))

    def contrasted(self, x: np.ndarray) -> np.ndarray:
        """``[window, contrast]`` rows, each window contrasted with the other windows of its example."""
        out = np.concatenate([x, np.zeros_like(x)], axis=1)
        owner = np.array(self.owner)
        for n in np.unique(owner):
            rows = np.flatnonzero(owner == n)
            out[rows, x.shape[1] :] = contrast(x[rows])
        return out

    def worst(self, scores: np.ndarray) -> np.ndarray:
        """Per example: the highest score of its windows."""
        out = np.full(len(self.examples), -1.0)
        np.maximum.at(out, np.array(self.owner), scores)
        return out


def _holds_attack(e: Example, window: str) -> bool:
    if e.injected is None:
        return False
    attack = e.text[e.injected[0] : e.injected[1]]
    pieces = [p for p in windows(attack, 120) if len(p) >= 12]
    return any(p[:60] in window for p in pieces) or window in attack


# --- fitting -------------------------------------------------------------------------------------------


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, hidden: int, epochs: int = 400) -> list[Any]:
    """Class-balanced softmax regression (``hidden=0``) or a one-hidden-layer ReLU network, full-batch
    Adam with L2; returns the dense layers [(W, b), ...]."""
    rng = np.random.default_rng(0)
    # Standardize the features (e5's embeddings crowd into a narrow cone); folded into the first layer.
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = (x - mean) / std
    dims = [x.shape[1], *([hidden] if hidden else []), n_classes]
    params: list[np.ndarray] = []
    for a, b in itertools.pairwise(dims):
        params += [rng.normal(0, np.sqrt(2.0 / a), (a, b)), np.zeros(b)]
    # Benign weighs as much as all harmful classes together, each of which weighs the same.
    counts = np.maximum(np.bincount(y, minlength=n_classes), 1)
    class_w = np.where(np.arange(n_classes) == 0, 0.5 / counts, 0.5 / ((n_classes - 1) * counts))
    sw = class_w[y][:, None]
    onehot = np.eye(n_classes)[y]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, epochs + 1):
        acts = [x]
        for i in range(0, len(params), 2):
            z = acts[-1] @ params[i] + params[i + 1]
            acts.append(np.maximum(z, 0.0) if i + 2 < len(params) else z)
        z = acts[-1] - acts[-1].max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        delta = (p - onehot) * sw
        grads: list[np.ndarray] = [np.empty(0)] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i] = acts[i // 2].T @ delta + l2 * params[i]
            grads[i + 1] = delta.sum(axis=0)
            if i:
                delta = (delta @ params[i].T) * (acts[i // 2] > 0)
        for i, (param, grad) in enumerate(zip(params, grads, strict=True)):
            m[i] = 0.9 * m[i] + 0.1 * grad
            v[i] = 0.999 * v[i] + 0.001 * grad**2
            param -= 0.01 * (m[i] / (1 - 0.9**t)) / (np.sqrt(v[i] / (1 - 0.999**t)) + 1e-8)
    params[1] = params[1] - (mean / std) @ params[0]
    params[0] = params[0] / std[:, None]
    return [
        (params[i].astype(np.float32), params[i + 1].astype(np.float32)) for i in range(0, len(params), 2)
    ]


def threshold_at(benign_scores: np.ndarray, budget: float) -> float:
    """The lowest threshold that flags at most ``budget`` of these benign scores."""
    return _flagging_at_most(benign_scores, int(np.floor(budget * len(benign_scores))))


def _flagging_at_most(benign_scores: np.ndarray, k: int) -> float:
    s = np.sort(benign_scores)[::-1]
    t = float(s[k]) + 1e-6 if k < len(s) else 0.0
    return float(min(max(t, 0.05), 1.0 - 1e-7))


def threshold_beside(benign_scores: np.ndarray, already: np.ndarray, budget: float) -> float:
    """The lowest threshold that, together with the texts ``already`` flagged by another head, flags at
    most ``budget`` of these benign texts (the highest threshold when the other head spends it all)."""
    room = int(np.floor(budget * len(benign_scores))) - int(already.sum())
    return _flagging_at_most(benign_scores[~already], room) if room >= 0 else 1.0 - 1e-7


def recall_at(pos: np.ndarray, t: float) -> float:
    return float((pos >= t).mean()) if len(pos) else float("nan")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_points(pos: np.ndarray, neg: np.ndarray) -> dict[str, float]:
    out = {"auroc": round(auroc(pos, neg), 4)}
    for fpr in (0.001, 0.005, 0.01, 0.02, 0.05):
        out[f"recall@fpr{fpr}"] = round(recall_at(pos, threshold_at(neg, fpr)), 4) if len(neg) else 0.0
    return out


class Trained:
    """A head over units, with per-example worst-window scores."""

    def __init__(self, classes: list[str], layers: list[Any], x: np.ndarray, units: Units) -> None:
        self.head = Head(layers, classes, 0.5, 0.5)
        self.probs = self.head.probabilities(x)
        self.units = units
        self.score = units.worst(1.0 - self.probs[:, 0])

    def category(self) -> list[str]:
        """Per example: the most likely class of its worst window."""
        worst: dict[int, tuple[float, str]] = {}
        for i, o in enumerate(self.units.owner):
            s = 1.0 - self.probs[i, 0]
            if o not in worst or s > worst[o][0]:
                worst[o] = (s, self.head.classes[1 + int(np.argmax(self.probs[i, 1:]))])
        return [worst.get(n, (0.0, "benign"))[1] for n in range(len(self.units.examples))]


def train_head(
    name: str,
    x: np.ndarray,
    units: Units,
    labels: list[str],
    classes: list[str],
    budget: float,
    is_benign: Callable[[Example], bool],
) -> tuple[list[Any], str]:
    """Fit on the train split's windows, pick the size and L2 by recall at the budget on calib; return the
    layers and the choice."""
    y = np.array([classes.index(lab) for lab in labels])
    split = np.array([units.examples[o].split for o in units.owner])
    tr = split == "train"
    calib = [n for n, e in enumerate(units.examples) if e.split == "calib"]
    neg = np.array([n for n in calib if is_benign(units.examples[n])])
    pos = np.array([n for n in calib if not is_benign(units.examples[n])])
    best: tuple[float, str, list[Any]] | None = None
    for hidden, l2 in HYPER:
        layers = fit(x[tr], y[tr], len(classes), l2, hidden)
        score = Trained(classes, layers, x, units).score
        r = recall_at(score[pos], threshold_at(score[neg], budget))
        print(
            f"  {name}: hidden={hidden} l2={l2:g} calib recall at {budget:.2%} benign flagged: {r:.3f}",
            file=sys.stderr,
        )
        if best is None or r > best[0]:
            best = (r, f"hidden={hidden},l2={l2:g}", layers)
    assert best is not None
    return best[2], best[1]


# --- reporting -----------------------------------------------------------------------------------------


def rate(flags: np.ndarray, idx: list[int]) -> dict[str, Any]:
    return {"n": len(idx), "rate": round(float(flags[idx].mean()), 4) if idx else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="multilingual-e5-small-int8")
    ap.add_argument("--out", type=Path, default=ROOT / "recipes" / "safety" / "classifier-head.npz")
    ap.add_argument("--report", type=Path)
    ap.add_argument("--block-budget", type=float, default=0.005)
    ap.add_argument("--flag-budget", type=float, default=0.0075)
    ap.add_argument("--document-budget", type=float, default=0.02)
    args = ap.parse_args()
    if (why := safety_data.missing()) is not None:
        sys.exit(f"error: {why} (the shared data folder sits beside the checkout)")

    inputs, docs = safety_data.inputs(), safety_data.documents()
    docs += safety_data.more_attacks(docs, ATTACKS_PER_TRAIN_DOC)
    inputs += safety_data.with_filler(inputs)
    iu, du = Units(inputs, MAX_WINDOWS), Units(docs, None)
    encoder = Encoder(encoder_dir(args.encoder), threads=int(os.environ.get("EDGEKIT_THREADS", "2")))
    cache = Settings.from_env().cache_dir / "safety-train" / f"{encoder.sha256[:16]}.npz"
    print(f"embedding {len(iu.texts)} input and {len(du.texts)} document windows", file=sys.stderr)
    xi = embed_all(encoder, iu.texts, cache)
    xd = embed_all(encoder, du.texts, cache)
    xc = du.contrasted(xd)

    benign = lambda e: e.label == "benign"  # noqa: E731
    hz_labels = [iu.examples[o].label for o in iu.owner]
    hz_layers, hz_l2 = train_head("hazard", xi, iu, hz_labels, HAZARD_CLASSES, args.flag_budget, benign)
    jb_labels = ["prompt_injection" if iu.examples[o].jailbreak else "benign" for o in iu.owner]
    jb_layers, jb_l2 = train_head(
        "jailbreak",
        xi,
        iu,
        jb_labels,
        ["benign", "prompt_injection"],
        args.flag_budget,
        lambda e: not e.jailbreak,
    )
    in_labels = ["prompt_injection" if a else "benign" for a in du.attack]
    in_layers, in_l2 = train_head(
        "injection",
        xc,
        du,
        in_labels,
        ["benign", "prompt_injection"],
        args.document_budget,
        lambda e: e.injected is None,
    )

    hazard = Trained(HAZARD_CLASSES, hz_layers, xi, iu)
    jailbreak = Trained(["benign", "prompt_injection"], jb_layers, xi, iu)
    injection = Trained(["benign", "prompt_injection"], in_layers, xc, du)
    hazard_docs = Trained(HAZARD_CLASSES, hz_layers, xd, du)

    def where(units: Units, split: str, keep: Callable[[Example], bool]) -> list[int]:
        return [n for n, e in enumerate(units.examples) if e.split == split and keep(e)]

    calib_benign = where(iu, "calib", lambda e: benign(e) and not e.jailbreak)
    hz_block = threshold_at(hazard.score[calib_benign], args.block_budget)
    hz_flag = threshold_at(hazard.score[calib_benign], args.flag_budget)
    jb_flag = threshold_at(jailbreak.score[where(iu, "calib", lambda e: not e.jailbreak)], args.flag_budget)
    jb_block = threshold_at(jailbreak.score[where(iu, "calib", lambda e: not e.jailbreak)], args.block_budget)
    clean_docs = where(du, "calib", lambda e: e.injected is None)
    # The document budget holds for the context layer as a whole: the hazard head runs on documents too.
    hz_doc = hazard_docs.score[clean_docs]
    in_flag = threshold_beside(injection.score[clean_docs], hz_doc >= hz_flag, args.document_budget)
    in_block = threshold_beside(injection.score[clean_docs], hz_doc >= hz_block, args.document_budget / 2)

    heads = Heads(
        {
            "hazard": Head(hz_layers, HAZARD_CLASSES, hz_flag, max(hz_block, hz_flag)),
            "jailbreak": Head(jb_layers, ["benign", "prompt_injection"], jb_flag, max(jb_block, jb_flag)),
            "injection": Head(
                in_layers, ["benign", "prompt_injection"], in_flag, max(in_block, in_flag), context=True
            ),
        },
        {
            "encoder_model": args.encoder,
            "encoder_onnx_sha256": encoder.sha256,
            "window_chars": str(WINDOW_CHARS),
            "data": "tools/safety_data.py: AILuminate demo en/fr, GSM8K train, T0 prompts, BIPIA train, "
            "recipes/data/safety/authored",
            "data_sha256": data_hash(inputs, docs),
            "hyper": f"hazard:{hz_l2} jailbreak:{jb_l2} injection:{in_l2}",
            "budgets": f"block={args.block_budget} flag={args.flag_budget} document={args.document_budget}",
            "train_examples": str(sum(e.split == "train" for e in [*inputs, *docs])),
        },
    )
    trained = (hazard, jailbreak, injection, hazard_docs, heads)
    report = evaluate(iu, du, *trained, split="test")
    report["calib"] = evaluate(iu, du, *trained, split="calib")["summary"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    heads.save(tmp)
    tmp.replace(args.out)
    report["saved"] = str(args.out)
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")


def data_hash(inputs: list[Example], docs: list[Example]) -> str:
    h = hashlib.sha256()
    for e in [*inputs, *docs]:
        h.update(f"{e.split}\t{e.label}\t{e.jailbreak}\t{e.text}\n".encode())
    return h.hexdigest()


def evaluate(
    iu: Units,
    du: Units,
    hazard: Trained,
    jailbreak: Trained,
    injection: Trained,
    hazard_docs: Trained,
    heads: Heads,
    split: str,
) -> dict[str, Any]:
    hz, jb, inj = heads.heads["hazard"], heads.heads["jailbreak"], heads.heads["injection"]
    ex = iu.examples
    idx = [n for n, e in enumerate(ex) if e.split == split]
    flag_h, block_h = hazard.score >= hz.escalate, hazard.score >= hz.block
    flag_j = jailbreak.score >= jb.escalate
    any_flag = flag_h | flag_j
    cats = hazard.category()
    by_source: dict[str, list[int]] = defaultdict(list)
    for n in idx:
        if ex[n].label == "benign" and not ex[n].jailbreak:
            by_source[ex[n].source].append(n)
    benign_all = [n for ns in by_source.values() for n in ns]
    harmful = [n for n in idx if ex[n].label != "benign"]
    per_cat: dict[str, Any] = {}
    for c in HAZARDS.values():
        ns = [n for n in harmful if ex[n].label == c]
        per_cat[c] = {
            **rate(flag_h, ns),
            "blocked": rate(block_h, ns)["rate"],
            "right_category": round(float(np.mean([cats[n] == c for n in ns])), 4) if ns else None,
            **roc_points(hazard.score[ns], hazard.score[benign_all]),
        }
    per_lang: dict[str, Any] = {}
    for lang in sorted({ex[n].lang for n in idx}):
        ns_h = [n for n in harmful if ex[n].lang == lang]
        ns_b = [n for n in benign_all if ex[n].lang == lang]
        per_lang[lang] = {"harmful_recall": rate(flag_h, ns_h), "benign_flagged": rate(any_flag, ns_b)}
    jb_pos = [n for n in idx if ex[n].jailbreak]
    d_idx = [n for n, e in enumerate(du.examples) if e.split == split]
    d_pos = [n for n in d_idx if du.examples[n].injected is not None]
    d_neg = [n for n in d_idx if du.examples[n].injected is None]
    flag_d = (injection.score >= inj.escalate) | (hazard_docs.score >= hz.escalate)
    summary = {
        "split": split,
        "thresholds": {
            k: {"escalate": round(h.escalate, 4), "block": round(h.block, 4)} for k, h in heads.heads.items()
        },
        "benign_inputs": {"flagged": rate(any_flag, benign_all), "blocked": rate(block_h, benign_all)},
        "harmful_recall": {
            "flagged": rate(flag_h, harmful),
            "blocked": rate(block_h, harmful),
            "flagged_any_head": rate(any_flag, harmful),
        },
        "jailbreak_recall": rate(jailbreak.score >= jb.escalate, jb_pos),
        "documents": {"injected_flagged": rate(flag_d, d_pos), "clean_flagged": rate(flag_d, d_neg)},
    }
    return {
        "summary": summary,
        "benign_by_source": {
            s: {"flagged": rate(any_flag, ns), "blocked": rate(block_h, ns)}
            for s, ns in sorted(by_source.items())
        },
        "harmful_by_category": per_cat,
        "by_language": per_lang,
        "jailbreak_roc": roc_points(
            jailbreak.score[jb_pos], jailbreak.score[[n for n in idx if not ex[n].jailbreak]]
        ),
        "document_roc": roc_points(injection.score[d_pos], injection.score[d_neg]),
    }


if __name__ == "__main__":
    main()
