"""Filtering streamed output with the least hold-back that still catches a match split across chunks.

``StreamGuard.feed(chunk)`` returns the text that is now safe to show. It keeps back the last ``window``
characters (the longest match any streaming filter can make) and any unfinished word (keys, tokens,
e-mail addresses and IBANs written without spaces have no spaces, so a word is released only once it
ended, up to ``MAX_WORD`` characters). Everything else is checked with the filters of its layer and
released with redactions applied. A span that reaches into the held-back part holds back from its start.
With the policy's ``[classifier] stream = "sentence"``, text is also held to whole sentences, and each is
judged by the whole-text filters (the classifier) before it is shown.
A ``block`` verdict stops the stream: nothing from the blocked span on is released (during decoding that
is how a banned sequence cuts generation). ``finish()`` releases the rest after a last check, and runs
the whole-text filters (the classifier) on the complete output: text already released by then stays
released, so their verdict ends the stream (``content_filter``) rather than withdrawing it.

Filters see a little already-released text before the pending part (``LOOKBEHIND``), so context cues ("date
of birth:") that were released earlier still count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from edgekit.safety.guard import LAYER_FILTERS, Decision, redact
from edgekit.safety.taxonomy import Layer, Span, Verdict

if TYPE_CHECKING:
    from edgekit.runtime.types import Chunk
    from edgekit.safety.guard import Guard

MAX_WORD = 512
LOOKBEHIND = 64
SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"')\]]*\s+|\n+")
MIN_RELEASE = 16
"""Characters that must be ready before a release: checks run once per few tokens, not on every one."""


class StreamGuard:
    def __init__(self, guard: Guard, layer: Layer = "decoding") -> None:
        self.guard = guard
        self.layer = layer
        names = LAYER_FILTERS[layer]
        self.stream_filters = [n for n in names if n in guard.filters and guard.filters[n].window >= 0]
        self.whole_filters = [n for n in names if n in guard.filters and guard.filters[n].window < 0]
        self.window = max((guard.filters[n].window for n in self.stream_filters), default=0)
        self.pending = ""
        self.released = ""  # original text released so far (for look-behind and the final check)
        self.full: list[str] = []
        self.stopped: Decision | None = None
        self.decisions: list[Decision] = []
        self.by_sentence = bool(self.whole_filters) and guard.policy.classifier.stream == "sentence"

    def feed(self, chunk: str) -> str:
        """Add generated text; return the part that is safe to show now (possibly redacted)."""
        if self.stopped is not None or not chunk:
            return ""
        self.pending += chunk
        self.full.append(chunk)
        return self._release(final=False)

    def finish(self) -> str:
        """End of generation: release what is held back, after the last checks."""
        if self.stopped is not None:
            return ""
        out = self._release(final=True)
        if self.stopped is None and self.whole_filters and not self.by_sentence:
            decision = self.guard.check("".join(self.full), self.layer, filters=self.whole_filters)
            self.decisions.append(decision)
            if decision.blocked:
                self.stopped = decision
        return out

    def _safe_end(self) -> int:
        end = len(self.pending) - self.window
        word_start = len(self.pending)
        while word_start > 0 and not self.pending[word_start - 1].isspace():
            word_start -= 1
        if len(self.pending) - word_start <= MAX_WORD:
            end = min(end, word_start)
        return max(end, 0)

    def _release(self, *, final: bool) -> str:
        end = len(self.pending) if final else self._safe_end()
        if end < MIN_RELEASE and not final:  # release in small batches: one check per few tokens
            return ""
        behind = self.released[-LOOKBEHIND:]
        text = behind + self.pending
        decision = self.guard.check(text, self.layer, filters=self.stream_filters, audit=False)
        shift = len(behind)
        spans: list[Span] = []
        block_at: int | None = None
        for v in decision.verdicts:
            for s in v.spans:
                start, stop = s.start - shift, s.end - shift
                if stop <= 0:
                    continue  # entirely in text released before
                if v.action == "block":
                    block_at = max(0, start) if block_at is None else min(block_at, max(0, start))
                elif v.action == "redact":
                    spans.append(Span(max(0, start), stop, s.kind))
        if decision.verdicts:
            self.decisions.append(decision)
        if block_at is not None:
            # A complete match already: the stream ends here, so everything before it is final.
            end = block_at
            spans = [Span(sp.start, min(sp.end, end), sp.kind) for sp in spans if sp.start < end]
            self.stopped = _only_blocks(decision)
        for sp in spans:
            if sp.start < end < sp.end:  # a match that may still grow: hold it back whole
                end = sp.start
        if self.by_sentence:  # also when a pattern stopped the stream: what precedes it is judged too
            end = self._judge_sentences(end, final or self.stopped is not None)
        self._audit(decision, shift, end)
        head = self.pending[:end]
        out = redact(head, [sp for sp in spans if sp.end <= end])
        self.released += head
        self.pending = self.pending[end:]
        if self.stopped is not None:
            self.pending = ""
        return out

    def _judge_sentences(self, end: int, final: bool) -> int:
        """Sentence mode: release only whole sentences, each judged by the whole-text filters first."""
        if not final:
            cut = max((m.end() for m in SENTENCE_END.finditer(self.pending, 0, end)), default=0)
            end = cut
        piece = self.pending[:end]
        if not piece.strip():
            return end
        decision = self.guard.check(piece, self.layer, filters=self.whole_filters, audit=False)
        if decision.verdicts:
            self.decisions.append(decision)
        if decision.blocked:
            self.stopped = _only_blocks(decision)
            base = len(self.released)
            for v in self.stopped.verdicts:
                spans = tuple(Span(base + s.start, base + s.end, s.kind) for s in v.spans)
                self.guard.record(replace(v, spans=spans), self.layer, self.released + self.pending)
            return 0
        return end

    def _audit(self, decision: Decision, shift: int, end: int) -> None:
        """Record each finding once, when its text is released (or when it stops the stream), with offsets
        into the whole stream: pending text is checked again on every release."""
        base = len(self.released)
        whole = self.released + self.pending
        for v in decision.verdicts:
            spans = tuple(
                Span(base + s.start - shift, base + s.end - shift, s.kind)
                for s in v.spans
                if s.end - shift > 0
                and (s.end - shift <= end or (v.action == "block" and self.stopped is not None))
            )
            if spans:
                self.guard.record(replace(v, spans=spans), self.layer, whole)


def _only_blocks(decision: Decision) -> Decision:
    blocks: tuple[Verdict, ...] = tuple(v for v in decision.verdicts if v.action == "block")
    return Decision(decision.layer, "block", blocks, "", language=decision.language)


def guard_chunks(
    guard: Guard, chunks: Iterator[Chunk], layer: Layer = "output", decisions: list[Decision] | None = None
) -> Iterator[Chunk]:
    """Filter a model's chunks through a ``StreamGuard``. On ``block`` the upstream iterator is closed
    (which stops generation) and the last chunk says ``content_filter``. An empty final chunk is passed on
    as the same object. ``decisions`` gets the stream's decisions that had findings when it ends."""
    from edgekit.runtime.types import Chunk

    sg = guard.stream(layer)
    last: Chunk | None = None
    try:
        for chunk in chunks:
            if chunk.finish_reason or chunk.usage:
                last = chunk
            text = sg.feed(chunk.text)
            if text:
                yield Chunk(text)
            if sg.stopped is not None:
                break
        if sg.stopped is None:
            text = sg.finish()
            if text:
                yield Chunk(text)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        if decisions is not None:
            decisions.extend(d for d in sg.decisions if d.verdicts)
    usage = last.usage if last is not None else None
    if sg.stopped is not None:
        yield Chunk("", finish_reason="content_filter", usage=usage)
    elif last is not None and not last.text:
        yield last
    else:
        yield Chunk("", finish_reason=last.finish_reason if last else "stop", usage=usage)
