"""ModelPool: N copies of one model behind the Responder surface, so a server can generate N at once.

A llama.cpp context serves one generation at a time, so concurrency needs copies. Their weights are
memory-mapped from the same file and shared by the OS; each copy adds its own context (KV cache).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, overload

from edgekit.errors import InputError
from edgekit.runtime.types import ChatMessage, Chunk, Completion
from edgekit.serve.protocol import Responder


class ModelPool:
    """Hands each call a free copy; a stream keeps its copy until it ends or is closed."""

    def __init__(self, copies: Sequence[Responder]) -> None:
        if not copies:
            raise InputError("a model pool needs at least one model")
        self.copies = list(copies)
        self._free: queue.SimpleQueue[Responder] = queue.SimpleQueue()
        for copy in self.copies:
            self._free.put(copy)

    @property
    def name(self) -> str:
        return self.copies[0].name

    @overload
    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: Literal[False] = ...,
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> Completion: ...

    @overload
    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: Literal[True],
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> _Lease: ...

    @overload
    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> Completion | _Lease: ...

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: bool = False,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] = (),
        **extra: Any,
    ) -> Completion | _Lease:
        copy = self._free.get()  # never waits under the server: it runs at most len(copies) calls at once
        try:
            result = copy.chat(
                messages,
                stream=stream,
                system=system,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                stop=stop,
                **extra,  # schema=... for structured output
            )
        except BaseException:
            self._free.put(copy)
            raise
        if isinstance(result, Completion):
            self._free.put(copy)
            return result
        return _Lease(result, lambda: self._free.put(copy))

    def close(self) -> None:
        for copy in self.copies:
            copy.close()


class _Lease(Iterator[Chunk]):
    """A chunk iterator that gives its model back once, when exhausted, failed or closed (even unstarted,
    which a generator's ``finally`` would miss)."""

    def __init__(self, chunks: Iterator[Chunk], give_back: Callable[[], None]) -> None:
        self._chunks = chunks
        self._give_back: Callable[[], None] | None = give_back
        self._lock = threading.Lock()

    def __next__(self) -> Chunk:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._lock:
            give_back, self._give_back = self._give_back, None
        if give_back is None:
            return
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            give_back()
