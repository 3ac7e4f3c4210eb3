"""Retries with jittered backoff for retryable remote errors, behind a circuit breaker.

The breaker opens after ``failures`` consecutive failures and stays open for ``reset_after_s``; while open,
calls fail fast (the router then degrades to the local answer instead of waiting on a dead endpoint). Then
it is half-open: one call goes through as a probe while the others still fail fast; the probe's success
closes it, its failure opens it again. Only failures that say the endpoint is unwell count (retryable
ones: timeouts, refused connections, 5xx, 429); a non-retryable answer (401, 400, ...) is an answer from a
live endpoint: it is not retried and does not move the breaker toward open.
"""

from __future__ import annotations

import random
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
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    def check(self) -> None:
        """Fail fast while open, and in half-open for every call but the one probe."""
        with self._lock:
            if self._opened_at is None:
                return
            if self._clock() - self._opened_at >= self.reset_after_s and not self._probing:
                self._probing = True  # this call is the probe
                return
        raise CircuitOpenError("the remote endpoint is failing; circuit open")

    def success(self) -> None:
        """The endpoint answered (with a result, or with a non-retryable error)."""
        with self._lock:
            self._count, self._opened_at, self._probing = 0, None, False

    def release(self) -> None:
        """A call ended without a verdict on the endpoint: a probe in flight may be tried again."""
        with self._lock:
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or self._count >= self.failures:
                self._opened_at = self._clock()
            self._probing = False


def backoff_s(attempt: int, base_delay_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, so clients that failed
    together do not retry together."""
    step = base_delay_s * 2 ** (attempt - 1)
    return step / 2 + (rng or random).uniform(0, step / 2)


def call_with_retries(
    fn: Callable[[], T],
    *,
    breaker: CircuitBreaker,
    retries: int,
    base_delay_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[T, int]:
    """Run ``fn``; retry retryable RemoteErrors with jittered exponential backoff. Returns (result,
    attempts). ``deadline`` (a ``clock`` time): no retry starts after it, nor waits past it (a
    ``Retry-After`` beyond it ends the retries at once, with that error)."""
    attempt = 0
    while True:
        breaker.check()
        attempt += 1
        try:
            result = fn()
        except RemoteError as e:
            if not e.retryable:
                breaker.success()  # the endpoint is up; this request is what it refused
                raise
            breaker.failure()
            if attempt > retries or breaker.state != "closed":
                raise  # the endpoint's own error, not "circuit open" from the next attempt
            delay = backoff_s(attempt, base_delay_s, rng)
            if isinstance(e, RemoteRateLimitError) and getattr(e, "retry_after", None):
                delay = max(delay, float(e.retry_after))  # type: ignore[attr-defined]
            if deadline is not None and clock() + delay >= deadline:
                raise
            sleep(min(delay, 30.0))
            continue
        except BaseException:
            breaker.release()  # cancelled or broken mid-call: no verdict on the endpoint
            raise
        breaker.success()
        return result, attempt
