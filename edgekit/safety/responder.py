"""A guarded responder: the safety policy around anything with ``edgekit.Model``'s ``chat`` (a model, a
pool, the cascade router), so ``edgekit serve --safety`` filters input and output in one place.

Input: every user message passes the ``input`` layer and every tool message (documents, tool results)
the ``context`` layer; ``block`` refuses the request (``SafetyBlockedError``, HTTP 400; a blocked
document is replaced by a short notice instead, so one poisoned search result does not sink the
request), ``redact``
replaces the spans before the model sees them (and before anything is sent to a remote tier),
``escalate`` is handed to the cascade's safety gate through ``signal.use_signal`` (a single model has no
safer path: the request goes on, with an audit record). Output: non-streaming answers pass the ``output``
layer once; streams pass a ``StreamGuard`` (hold-back, redaction, ``content_filter`` on block, which also
closes the model's iterator and so stops generation). When the policy bans sequences, non-streaming
answers are generated as a guarded stream too, so decoding stops where a banned sequence appears.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from edgekit.runtime.types import ChatMessage, Chunk, Completion, collect, normalize_messages
from edgekit.safety.guard import Guard, SafetyBlockedError
from edgekit.safety.signal import use_signal
from edgekit.safety.taxonomy import Action, strictest

WITHHELD = "[document withheld by the safety policy]"


class GuardedResponder:
    def __init__(self, inner: Any, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard
        self._origin: OrderedDict[int, object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def screen(self, messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], dict[str, str]]:
        """Input intake and context assembly: (messages to send on, category -> action)."""
        out: list[ChatMessage] = []
        signal: dict[str, Action] = {}
        for m in messages:
            layer = {"user": "input", "tool": "context"}.get(m["role"])
            if layer is None:
                out.append(m)
                continue
            d = self.guard.check(m["content"], layer)  # type: ignore[arg-type]
            if d.blocked and layer == "context":  # a poisoned document is left out, not obeyed
                out.append({**m, "content": WITHHELD})
                continue
            if d.blocked:
                raise SafetyBlockedError(
                    f"the request was refused by the safety policy ({_brief(d.signal())})"
                )
            for category, action in d.signal().items():
                signal[category] = strictest([signal.get(category, "allow"), action])  # type: ignore[list-item]
            out.append({**m, "content": d.text})
        return out, dict(signal)

    def chat(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: bool = False,
        system: str | None = None,
        **params: Any,
    ) -> Completion | Iterator[Chunk]:
        msgs, signal = self.screen(normalize_messages(messages, system))
        if stream:
            return self._stream(msgs, signal, params)
        if self.guard.policy.decoding.banned:
            # generate as a stream under the guard, so a banned sequence stops decoding where it appears
            chunks = list(self._stream(msgs, signal, params))
            return self._remember(collect(chunks, model=self.name, backend=self.name), chunks[-1])
        with use_signal(signal):
            completion = self.inner.chat(msgs, stream=False, **params)
        d = self.guard.check_output(completion.text)
        if d.blocked:
            return self._remember(replace(completion, text="", finish_reason="content_filter"), completion)
        if d.text != completion.text:
            return self._remember(replace(completion, text=d.text), completion)
        return completion

    def _stream(
        self, msgs: list[ChatMessage], signal: dict[str, str], params: dict[str, Any]
    ) -> Iterator[Chunk]:
        with use_signal(signal):
            chunks = self.inner.chat(msgs, stream=True, **params)
        return self.guard.guard_chunks(chunks)

    def _remember(self, new: Completion, old: Completion | Chunk) -> Completion:
        with self._lock:
            self._origin[id(new)] = old
            while len(self._origin) > 256:
                self._origin.popitem(last=False)
        return new

    def original(self, obj: Completion | Chunk) -> Completion | Chunk:
        """The inner responder's answer behind one this responder changed (redacted or withheld), so
        facts the inner one recorded for it (the cascade's route) can still be found."""
        with self._lock:
            found = self._origin.pop(id(obj), obj)
        return found  # type: ignore[return-value]

    def close(self) -> None:
        self.inner.close()


def _brief(signal: dict[str, str]) -> str:
    return ", ".join(f"{c}: {a}" for c, a in sorted(signal.items()) if a == "block")
