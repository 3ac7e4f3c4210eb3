"""Banned sequences: phrases the policy forbids in generated text (matched case-insensitively on the
normalized text, whole words). During decoding a ``block`` verdict from this filter stops generation at
once (see ``stream.StreamGuard``); elsewhere it acts like any other filter."""

from __future__ import annotations

import re

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Span, Verdict


class BannedFilter:
    name = "banned"

    def __init__(
        self,
        *,
        sequences: list[str] | tuple[str, ...] = (),
        category: str = "banned_sequence",
        action: Action = "block",
    ) -> None:
        self.sequences = tuple(s for s in sequences if s.strip())
        self.category = category
        self.action = action
        self.window = max((len(s) for s in self.sequences), default=0) + 1
        self.pattern = (
            re.compile("|".join(rf"(?<!\w){re.escape(s)}(?!\w)" for s in self.sequences), re.IGNORECASE)
            if self.sequences
            else None
        )

    def check(self, text: str, context: Context) -> list[Verdict]:
        if self.pattern is None:
            return []
        norm = context.norm(text)
        spans = tuple(
            Span(*norm.original_span(*m.span()), "banned") for m in self.pattern.finditer(norm.text)
        )
        if not spans:
            return []
        return [
            Verdict(
                self.category,
                self.action,
                spans,
                f"banned sequence ({len(spans)} match{'es' * (len(spans) > 1)})",
                filter=self.name,
            )
        ]
