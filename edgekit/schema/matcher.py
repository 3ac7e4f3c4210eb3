"""Token masks from a compiled grammar, for local backends that sample token by token.

``GrammarMask`` wraps one llguidance matcher for one generation: ``apply(logits)`` sets every token the
grammar forbids to -inf (a bitmask computed in tens of microseconds), ``consume(token)`` advances it. It is
the ``TokenConstraint`` a ``ResponseFormat`` hands the backend (``grammar_constraint``); the backend
exposes its vocabulary, and the llguidance tokenizer over it is built here, once per backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgekit.errors import BackendError

_BIAS = np.array([-np.inf, 0.0], dtype=np.float32)


def llama_tokenizer(vocab: Any, eos: Sequence[int]) -> Any:
    """An llguidance tokenizer over a llama.cpp vocabulary (about a second: cache it per model)."""
    import warnings

    from llguidance.llamacpp import lltokenizer_from_vocab

    with warnings.catch_warnings():  # it calls llama_token_get_attr, deprecated in llama-cpp-python
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(vocab, eos_token=list(eos))


def limits() -> Any:
    """Parser limits: bound compile and per-token mask time, whatever the schema."""
    from llguidance import LLParserLimits

    return LLParserLimits(max_grammar_size=200_000, initial_lexer_fuel=1_000_000, verbose_errors=False)


_TOKENIZERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def tokenizer_for(backend: Any) -> Any:
    """The llguidance tokenizer over a local backend's vocabulary (``vocab``, ``eog_tokens``), built on
    first use (about a second) and kept as long as the backend lives."""
    tok = _TOKENIZERS.get(backend)
    if tok is None:
        tok = _TOKENIZERS[backend] = llama_tokenizer(backend.vocab, backend.eog_tokens)
    return tok


def grammar_constraint(grammar: str) -> Callable[[Any], GrammarMask]:
    """What a ``ResponseFormat`` carries: given the local backend, a fresh mask for one generation."""
    return lambda backend: GrammarMask(tokenizer_for(backend), grammar, backend.n_vocab)


class GrammarMask:
    def __init__(self, tokenizer: Any, grammar: str, n_vocab: int) -> None:
        from llguidance import LLMatcher

        self.matcher = LLMatcher(tokenizer, grammar, log_level=0, limits=limits())
        self._check()
        self.n_vocab = n_vocab
        self._words = np.zeros((n_vocab + 31) // 32, dtype=np.int32)
        self._bytes = self._words.view(np.uint8)

    def _check(self) -> None:
        if self.matcher.is_error():
            raise BackendError(f"the output grammar failed: {self.matcher.get_error()[:300]}")

    def allowed(self) -> np.ndarray:
        """Boolean array over the vocabulary: True where the grammar allows the token next."""
        self.matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)
        self._check()
        return np.unpackbits(self._bytes, bitorder="little", count=self.n_vocab).view(bool)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        self.matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)
        self._check()
        bits = np.unpackbits(self._bytes, bitorder="little", count=self.n_vocab)
        n = min(len(logits), self.n_vocab)
        logits[:n] += _BIAS[bits[:n]]  # -inf where forbidden, 0 where allowed: faster than a boolean index
        logits[n:] = -np.inf
        return logits

    def consume(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            detail = self.matcher.get_error()[:200] if self.matcher.is_error() else f"token {token}"
            raise BackendError(
                f"the output grammar refused a token it had allowed ({detail})",
                "The model's vocabulary may lack a byte the schema requires (a rare character in a const or"
                " enum): change the schema or use another model.",
            )

    @property
    def done(self) -> bool:
        """The grammar allows nothing more: the value is complete."""
        return bool(self.matcher.is_stopped())

    @property
    def accepting(self) -> bool:
        return bool(self.matcher.is_accepting())
