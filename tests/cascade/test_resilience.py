"""The circuit breaker's half-open probe, what counts toward opening it, and jittered backoff."""

from __future__ import annotations

import random

import pytest

from edgekit.cascade.resilience import CircuitBreaker, CircuitOpenError, backoff_s, call_with_retries
from edgekit.errors import RemoteAuthError, RemoteUnreachableError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_half_open_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_after_s=10, clock=clock)
    breaker.failure()
    breaker.failure()
    with pytest.raises(CircuitOpenError):
        breaker.check()
    clock.now = 10
    assert breaker.state == "half-open"
    breaker.check()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.check()  # everyone else still fails fast while it is in flight
    breaker.failure()  # one failed probe opens it again at once
    assert breaker.state == "open"
    clock.now = 20
    breaker.check()
    breaker.success()
    assert breaker.state == "closed"
    breaker.check()
    breaker.check()


def test_a_probe_that_ends_without_a_verdict_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_after_s=5, clock=clock)
    breaker.failure()
    clock.now = 5

    def cancelled() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_with_retries(cancelled, breaker=breaker, retries=0, sleep=lambda s: None)
    breaker.check()  # the next call may probe


def test_non_retryable_answers_do_not_open_the_circuit() -> None:
    breaker = CircuitBreaker(failures=2, reset_after_s=60)
    calls = []

    def refused() -> None:
        calls.append(1)
        raise RemoteAuthError("401")

    for _ in range(5):
        with pytest.raises(RemoteAuthError):
            call_with_retries(refused, breaker=breaker, retries=3, sleep=lambda s: None)
    assert breaker.state == "closed" and len(calls) == 5  # never retried, never counted


def test_retries_back_off_with_jitter() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise RemoteUnreachableError("refused")

    breaker = CircuitBreaker(failures=100)
    with pytest.raises(RemoteUnreachableError):
        call_with_retries(down, breaker=breaker, retries=3, sleep=sleeps.append, rng=random.Random(1))
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, 1):
        step = 0.5 * 2 ** (attempt - 1)
        assert step / 2 <= delay <= step
    drawn = {round(backoff_s(3, 0.5, random.Random(seed)), 6) for seed in range(20)}
    assert len(drawn) > 10, "clients that failed together must not retry together"


def test_no_retry_starts_or_waits_past_the_deadline() -> None:
    """The latency class is a deadline for the whole escalation: a Retry-After beyond it ends the retries
    with the endpoint's own error, not after a capped wait."""
    from edgekit.errors import RemoteRateLimitError

    clock, sleeps = Clock(), []

    def limited() -> None:
        err = RemoteRateLimitError("429")
        err.retry_after = 99999  # type: ignore[attr-defined]
        raise err

    with pytest.raises(RemoteRateLimitError):
        call_with_retries(
            limited, breaker=CircuitBreaker(), retries=3, sleep=sleeps.append, deadline=30, clock=clock
        )
    assert sleeps == []

    def down() -> None:
        clock.now += 4  # each attempt takes 4 s
        raise RemoteUnreachableError("refused")

    calls_before = clock.now
    with pytest.raises(RemoteUnreachableError):
        call_with_retries(
            down,
            breaker=CircuitBreaker(failures=100),
            retries=10,
            sleep=lambda s: None,
            deadline=10,
            clock=clock,
        )
    assert clock.now - calls_before <= 12  # at most 3 attempts fit before the deadline, not 11


def test_a_failed_probe_reports_the_endpoints_error() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_after_s=5, clock=clock)
    breaker.failure()
    clock.now = 5
    calls = []

    def down() -> None:
        calls.append(1)
        raise RemoteUnreachableError("connection refused")

    with pytest.raises(RemoteUnreachableError, match="connection refused"):
        call_with_retries(down, breaker=breaker, retries=3, sleep=lambda s: None, clock=clock)
    assert len(calls) == 1 and breaker.state == "open"
