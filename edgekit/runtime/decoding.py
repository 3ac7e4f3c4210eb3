"""Pieces every local backend needs while decoding: token signals, UTF-8 reassembly, stop strings."""

from __future__ import annotations

import codecs

import numpy as np


def token_signal(logits: np.ndarray, token_id: int) -> tuple[float, float]:
    """Probability of ``token_id`` and entropy (nats) of softmax(logits), from logits already computed.

    One pass of exp over the vocabulary; no second forward pass.
    """
    z = logits - logits.max()
    e = np.exp(z, dtype=np.float32)
    total = float(e.sum())
    p_tok = float(e[token_id]) / total
    # H = log(sum e^z) - sum(p * z)
    entropy = float(np.log(total) - float(np.dot(e, z)) / total)
    return p_tok, max(entropy, 0.0)


class Utf8Stream:
    """Turns token byte pieces into text, holding back incomplete multi-byte sequences (an emoji spans
    several tokens). Bytes that can never be UTF-8 become U+FFFD; a character the token limit cut in
    half is dropped at the end rather than shown as U+FFFD."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._dec.decode(piece)

    def flush(self) -> str:
        pending, _ = self._dec.getstate()
        self._dec.reset()
        return "" if pending else self._dec.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text without ever emitting a stop string's first characters.

    ``push`` returns the text that is safe to show now; text that could still turn into a stop string
    is held back until the next push proves otherwise.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if not self._stops:
            return text
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held, self.stopped = "", True
            return buf[:cut]
        keep = 0
        for s in self._stops:
            for k in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
