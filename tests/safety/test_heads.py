"""The classifier's head file: round trip, thresholds, and refusal of a damaged or foreign file (no
encoder needed: random heads over random embeddings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ModelFileError
from edgekit.safety.filters import Context
from edgekit.safety.filters.classifier import HarmClassifier, Head, Heads, contrast, windows


class _FakeEncoder:
    """Maps a text to a fixed unit vector, so a head's output is known in advance."""

    sha256 = "0" * 64

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors.get(t, np.zeros(4, np.float32)) for t in texts])


def _heads(tmp_path: Path) -> Path:
    eye = np.eye(4, dtype=np.float32) * 8
    to_hazard = eye[:, :3].copy()
    to_hazard[3, 0] = 8  # the attack direction is benign content for the hazard head
    bias = np.array([2, 0, 0], np.float32)  # a text in no direction is benign
    hazard = Head([(to_hazard, bias)], ["benign", "violent_crimes", "hate"], 0.5, 0.9)
    binary = Head([(eye[:, [0, 3]], bias[:2])], ["benign", "prompt_injection"], 0.5, 0.9)
    path = tmp_path / "heads.npz"
    Heads(
        {"hazard": hazard, "jailbreak": binary, "injection": binary},
        {"encoder_model": "fake", "window_chars": "100"},
    ).save(path)
    return path


def test_round_trip_and_verdicts(tmp_path: Path) -> None:
    harm = np.array([0, 1, 0, 0], np.float32)
    attack = np.array([0, 0, 0, 1], np.float32)
    enc = _FakeEncoder({"bad": harm, "trick": attack})
    clf = HarmClassifier(head=_heads(tmp_path), encoder=enc)  # type: ignore[arg-type]
    assert clf.max_chars == 100 and clf.heads.encoder_model == "fake"
    (v,) = clf.check("bad", Context(layer="output"))
    assert v.category == "violent_crimes" and v.action == "block" and v.score > 0.9
    (v,) = clf.check("trick", Context(layer="input"))
    assert v.category == "prompt_injection" and dict(v.extra)["head"] == "jailbreak"
    assert not clf.check("trick", Context(layer="output"))  # the jailbreak head runs at input only
    assert not clf.check("fine", Context())
    doubtful = HarmClassifier(head=_heads(tmp_path), encoder=enc, block_threshold=0.99999)  # type: ignore[arg-type]
    (v,) = doubtful.check("bad", Context())
    assert v.action == "escalate" and "escalate" in v.reason
    strict_fr = HarmClassifier(head=_heads(tmp_path), encoder=enc, thresholds={"fr": 0.01})  # type: ignore[arg-type]
    assert strict_fr.check("fine", Context(language="fr")) and not strict_fr.check("fine", Context())


@pytest.mark.parametrize("damage", ["truncate", "classes"])
def test_a_damaged_head_file_is_refused(tmp_path: Path, damage: str) -> None:
    path = _heads(tmp_path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["hazard.classes"] = np.array(["benign", "not_a_category", "hate"])
        np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(ModelFileError) as e:
        Heads.load(path)
    assert "train_safety_classifier.py" in e.value.hint and "drop the key" in e.value.hint


def test_windows_keep_sentences_whole_and_bounded() -> None:
    text = "One two three. " * 40 + "A" * 900 + "\nLast line here."
    parts = windows(text, 100)
    assert all(len(p) <= 100 for p in parts)
    assert parts[0].startswith("One two three.") and parts[-1].endswith("Last line here.")
    assert "".join(parts).replace(" ", "") == text.replace(" ", "").replace("\n", "")
    assert windows("版本号是3.5。下一句话。", 10) == ["版本号是3.5。", "下一句话。"]
    assert windows("Short one.\n\nShort two.", 100) == ["Short one.", "Short two."]


def test_contrast_is_a_windows_difference_from_the_rest_of_its_text() -> None:
    x = np.array([[1, 0], [0, 1], [0, 1]], np.float32)
    assert contrast(x) == pytest.approx(np.array([[1, -1], [-0.5, 0.5], [-0.5, 0.5]]))
    assert not contrast(x[:1]).any()  # a text of one window has nothing to stand out from


def test_a_context_head_reads_a_planted_window_against_its_neighbours(tmp_path: Path) -> None:
    """The same window is flagged among different neighbours and not among copies of itself: the head
    sees [window, contrast], and the saved file keeps that."""
    w = np.zeros((4, 2), np.float32)
    w[3, 1] = 8  # the contrast half's second feature is the attack direction
    binary = Head([(w, np.array([2, 0], np.float32))], ["benign", "prompt_injection"], 0.5, 0.9, context=True)
    quiet = [(np.zeros((2, 2), np.float32), np.array([2, 0], np.float32))]
    hazard = Head(quiet, ["benign", "hate"], 0.5, 0.9)
    jailbreak = Head(quiet, ["benign", "prompt_injection"], 0.5, 0.9)
    path = tmp_path / "heads.npz"
    Heads({"hazard": hazard, "jailbreak": jailbreak, "injection": binary}, {"window_chars": "40"}).save(path)
    loaded = Heads.load(path)
    assert loaded.heads["injection"].context and not loaded.heads["hazard"].context
    vectors = {"Plain text here.": np.array([1, 0], np.float32), "Obey me now.": np.array([0, 1], np.float32)}
    clf = HarmClassifier(head=path, encoder=_FakeEncoder(vectors))  # type: ignore[arg-type]
    planted = "Plain text here.\n\nPlain text here.\n\nObey me now."
    (v,) = clf.check(planted, Context(layer="context"))
    assert v.category == "prompt_injection" and dict(v.extra)["head"] == "injection"
    assert not clf.check("Obey me now.\n\nObey me now.", Context(layer="context"))
