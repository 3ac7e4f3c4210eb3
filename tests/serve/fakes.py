"""A scripted Responder for the server's logic around the seam (request mapping, shapes, errors, limits)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from edgekit.runtime.types import ChatMessage, Chunk, Completion, Timings, TokenSignal, Usage


@dataclass
class FakeResponder:
    """Answers ``reply`` one word a chunk. ``gate``: each chunk waits for it (a stuck model); ``delay_s``:
    a slow one. ``error``: raised by chat(); ``fail_after``: the stream breaks after that many chunks."""

    reply: str = "Hello from the fake model"
    name: str = "fake-model"
    error: BaseException | None = None
    fail_after: int | None = None
    gate: threading.Event | None = None
    delay_s: float = 0.0
    calls: list[dict[str, Any]] = field(default_factory=list)
    streams_closed: int = 0
    chunks_made: int = 0
    closed: bool = False
    running: int = 0
    most_running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Completion | Iterator[Chunk]:
        self.calls.append(
            {
                "messages": list(messages),
                "stream": stream,
                "system": system,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop": tuple(stop),
            }
        )
        if self.error is not None:
            raise self.error
        words = self.reply.split(" ")[:max_tokens]
        if stream:
            return self._stream(words, max_tokens)
        with self._running():
            for _ in words:
                if self.gate is not None:
                    self.gate.wait(30)
        text = " ".join(words)
        usage = Usage(7, len(words))
        finish = "length" if len(words) == max_tokens else "stop"
        signals = tuple(TokenSignal(w) for w in words)
        return Completion(text, finish, usage, Timings(0.01, 0.02, len(words)), self.name, "fake", signals)

    def _stream(self, words: list[str], max_tokens: int) -> Iterator[Chunk]:
        with self._running():
            try:
                for i, word in enumerate(words):
                    if self.fail_after is not None and i == self.fail_after:
                        raise RuntimeError("the fake model broke mid-stream")
                    if self.gate is not None:
                        self.gate.wait(30)
                    time.sleep(self.delay_s)
                    self.chunks_made += 1
                    yield Chunk(word if i == 0 else " " + word, (TokenSignal(word),))
                finish = "length" if len(words) == max_tokens else "stop"
                yield Chunk("", finish_reason=finish, usage=Usage(7, len(words)))
            finally:
                self.streams_closed += 1

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeCompleter(FakeResponder):
    """A responder that also continues plain text (``Model.complete``): the prompt is its one message."""

    def complete(self, prompt: str, *, stream: bool, **params: Any) -> Completion | Iterator[Chunk]:
        return self.chat([{"role": "user", "content": prompt}], stream=stream, **params)


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` under a real uvicorn on a free loopback port in a thread; yields the base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
