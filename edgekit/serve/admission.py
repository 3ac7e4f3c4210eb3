"""Admission control: ``concurrency`` generation slots and a bounded, first-come queue in front of them.

A request that finds a free slot (and nobody queued ahead of it) starts at once. Otherwise it waits in
the queue, up to ``queue_timeout_s`` (then ``QueueTimeoutError``, HTTP 503). When the queue already holds
``max_queue`` requests, it is turned away at once (``QueueFullError``, HTTP 429): waiting longer than a
client would is worse than an early, honest "retry after N seconds". Everything here runs on the event
loop's thread; worker threads hand slots back through ``loop.call_soon_threadsafe(release)``.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from edgekit.errors import QueueFullError, QueueTimeoutError, ShuttingDownError


class Admission:
    def __init__(self, concurrency: int, max_queue: int, queue_timeout_s: float) -> None:
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.active = 0
        self.draining = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._mean_s = 1.0  # running mean of slot hold times, for Retry-After

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be. The caller must ``release`` it exactly once."""
        if self.draining:
            raise ShuttingDownError("the server is shutting down", retry_after=self.retry_after())
        if self.active < self.concurrency and not self.queued:
            self.active += 1
            return
        if self.queued >= self.max_queue:
            raise QueueFullError(
                f"the server is busy: {self.active} request(s) generating and {self.queued} queued "
                f"(--max-queue {self.max_queue})",
                retry_after=self.retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timer = asyncio.get_running_loop().call_later(self.queue_timeout_s, self._expire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # a slot was handed over just as the caller gave up: pass it on
            raise
        finally:
            timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, held_s: float | None = None) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to the pool."""
        if held_s is not None:
            self._mean_s += (held_s - self._mean_s) * 0.2
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to it; ``active`` stays the same
                return
        self.active = max(0, self.active - 1)

    def drain(self) -> None:
        """Stop admitting: queued requests and new ones get ``ShuttingDownError``; running ones go on."""
        self.draining = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ShuttingDownError("the server is shutting down"))

    def retry_after(self) -> int:
        """Seconds until a retry likely finds room: the queue ahead, at the recent mean service time."""
        ahead = self.queued + 1
        return max(1, min(60, math.ceil(self._mean_s * ahead / self.concurrency)))

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(
                QueueTimeoutError(
                    f"the request waited {self.queue_timeout_s:g}s in the queue without a free slot "
                    f"(--queue-timeout)",
                    retry_after=self.retry_after(),
                )
            )
