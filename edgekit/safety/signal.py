"""The safety verdicts of the request being answered, for code further down the same call.

``GuardedResponder`` screens a request, then calls the model or cascade inside ``use_signal(...)``; the
cascade's safety gate reads ``current_signal()`` when its request carries no verdicts of its own. A
context variable keeps concurrent requests (one worker thread each) apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

_SIGNAL: ContextVar[Mapping[str, str]] = ContextVar("edgekit_safety_signal", default=MappingProxyType({}))


def current_signal() -> Mapping[str, str]:
    """Category -> action for the request being answered (empty when no guard screened it)."""
    return _SIGNAL.get()


@contextmanager
def use_signal(signal: Mapping[str, str]) -> Iterator[None]:
    token = _SIGNAL.set(MappingProxyType(dict(signal)))
    try:
        yield
    finally:
        _SIGNAL.reset(token)
