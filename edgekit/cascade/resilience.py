"""Retries with backoff for retryable remote errors, behind a circuit breaker.

The breaker opens after ``failures`` consecutive failures and stays open for ``reset_after_s``; while open,
calls fail fast (the router then degrades to the local answer instead of waiting on a dead endpoint).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from edgekit.errors import RemoteError, RemoteRateLimitError

T = TypeVar("T")


class CircuitOpenError(RemoteError):
    retryable = True
    default_hint = "The remote failed repeatedly; edgekit waits before trying it again."


class CircuitBreaker:
    def __init__(
        self, failures: int = 3, reset_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.failures = failures
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    def check(self) -> None:
        if self.state == "open":
            raise CircuitOpenError("the remote endpoint is failing; circuit open")

    def success(self) -> None:
        with self._lock:
            self._count, self._opened_at = 0, None

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._count >= self.failures:
                self._opened_at = self._clock()


def call_with_retries(
    fn: Callable[[], T],
    *,
    breaker: CircuitBreaker,
    retries: int,
    base_delay_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Run ``fn``; retry retryable RemoteErrors with exponential backoff. Returns (result, attempts)."""
    attempt = 0
    while True:
        breaker.check()
        attempt += 1
        try:
            result = fn()
        except RemoteError as e:
            breaker.failure()
            if not e.retryable or attempt > retries:
                raise
            delay = base_delay_s * 2 ** (attempt - 1)
            if isinstance(e, RemoteRateLimitError) and getattr(e, "retry_after", None):
                delay = max(delay, float(e.retry_after))  # type: ignore[attr-defined]
            sleep(min(delay, 30.0))
            continue
        breaker.success()
        return result, attempt
