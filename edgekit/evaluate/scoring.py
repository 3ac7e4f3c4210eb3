"""Scoring: next-token logits for a token sequence from a local model, window by window.

A text is tokenized once per model (``text_tokens``: the BOS the model puts before a text, then the text's
own tokens) and cut into non-overlapping windows of the suite's context size. Each window starts from an
empty KV cache with the prefix, so every scored position sees only text of its own window, the same way
for both models. Position ``i`` of a window predicts token ``i + 1``; a window of ``n`` tokens scores
``n - 1`` positions.

Both local backends implement the seam (``LlamaCppBackend`` and ``OnnxBackend``): ``text_tokens``,
``trained_context`` and ``logit_blocks``. Remote models expose no logits and cannot be scored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from edgekit.errors import InputError, TokenizerMismatchError
from edgekit.runtime.base import Backend


@runtime_checkable
class Scorable(Protocol):
    """What a backend offers so that eval can score text with it (both local backends have it)."""

    def text_tokens(self, text: str) -> tuple[list[int], list[int]]: ...

    @property
    def trained_context(self) -> int | None: ...

    def logit_blocks(self, tokens: Sequence[int], block: int = 256) -> Iterator[np.ndarray]: ...


def scorable(backend: Backend, role: str) -> Scorable:
    if not isinstance(backend, Scorable):
        raise InputError(
            f"the {role} runs on the {backend.name} backend, which does not expose logits",
            "Drift metrics need a local model: a GGUF file, an ONNX folder or a models.lock name of one.",
        )
    return backend


@dataclass(frozen=True)
class Tokens:
    """A text as one model tokenizes it for scoring."""

    prefix: tuple[int, ...]
    ids: np.ndarray
    """int32 [n]: the text's tokens, without the prefix."""

    @classmethod
    def of(cls, model: Scorable, text: str) -> Tokens:
        prefix, ids = model.text_tokens(text)
        return cls(tuple(int(t) for t in prefix), np.asarray(ids, dtype=np.int32))


def check_same_tokens(slice_name: str, base: Tokens, cand: Tokens) -> None:
    """Drift compares distributions position by position, so both models must see identical token ids.

    The text's own tokens must match exactly. The prefixes may differ only in whether a single BOS is
    added: converters disagree on that flag for the same vocabulary (a GGUF that adds no BOS, its Hugging
    Face or ONNX export whose tokenizer.json adds one). Windows start with the baseline's prefix on both
    sides, so both models are still fed identical ids.
    """
    hint = (
        "Drift metrics need the same tokenizer on both sides: compare builds of the same model "
        "(for example a quantization against its source), not different model families."
    )
    bos_policy_only = sorted((len(base.prefix), len(cand.prefix))) == [0, 1]
    if base.prefix != cand.prefix and not bos_policy_only:
        raise TokenizerMismatchError(
            f"baseline and candidate start texts differently (prefix {list(base.prefix)} vs "
            f"{list(cand.prefix)}, slice '{slice_name}')",
            hint,
        )
    if base.ids.shape == cand.ids.shape and np.array_equal(base.ids, cand.ids):
        return
    n = min(base.ids.size, cand.ids.size)
    diff = np.flatnonzero(base.ids[:n] != cand.ids[:n])
    at = int(diff[0]) if diff.size else n
    raise TokenizerMismatchError(
        f"baseline and candidate tokenize slice '{slice_name}' differently ({base.ids.size} vs "
        f"{cand.ids.size} tokens; first difference at token {at})",
        hint,
    )


def windows(prefix: Sequence[int], ids: np.ndarray, size: int) -> list[list[int]]:
    """Non-overlapping windows of at most ``size`` tokens, each starting with ``prefix``.

    Windows that would score nothing (one token) are dropped.
    """
    step = size - len(prefix)
    if step < 1:
        raise InputError(f"a window of {size} tokens leaves no room after a {len(prefix)}-token prefix")
    out = []
    for start in range(0, ids.size, step):
        window = [*prefix, *(int(t) for t in ids[start : start + step])]
        if len(window) >= 2:
            out.append(window)
    return out


def scored_positions(prefix: Sequence[int], ids: np.ndarray, size: int) -> int:
    return sum(len(w) - 1 for w in windows(prefix, ids, size))


def window_targets(window: Sequence[int]) -> np.ndarray:
    """The token each scored position of a window predicts."""
    return np.asarray(window[1:], dtype=np.int64)


def scored_blocks(model: Scorable, window: Sequence[int], block: int) -> Iterator[np.ndarray]:
    """Logit blocks for the scored positions of ``window``: all but the last token, whose prediction lies
    outside the window and is not evaluated."""
    return model.logit_blocks(window[:-1], block)


_PACKAGES = {"llama.cpp": "llama_cpp_python", "onnxruntime": "onnxruntime"}


def scorer_id(backend: Backend) -> str:
    """Backend kind and library version: part of the cache key, since a new kernel can move logits."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version(_PACKAGES.get(backend.name, backend.name))
    except PackageNotFoundError:
        v = "unknown"
    return f"{backend.name} {v}"
