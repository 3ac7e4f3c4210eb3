"""ModelPool: one call per copy at a time, copies come back however a stream ends."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from edgekit.errors import InputError
from edgekit.runtime.types import ChatMessage, Completion
from edgekit.serve import ModelPool, Responder

from .fakes import FakeResponder

HI: list[ChatMessage] = [{"role": "user", "content": "Hi"}]


def test_pool_is_a_responder_named_after_its_model() -> None:
    pool = ModelPool([FakeResponder(), FakeResponder()])
    assert isinstance(pool, Responder) and pool.name == "fake-model"
    with pytest.raises(InputError):
        ModelPool([])


def test_concurrent_calls_get_different_copies() -> None:
    gate = threading.Event()
    copies = [FakeResponder(gate=gate), FakeResponder(gate=gate)]
    pool = ModelPool(copies)
    with ThreadPoolExecutor(2) as ex:
        futures = [ex.submit(pool.chat, HI, stream=False) for _ in range(2)]
        while sum(c.running for c in copies) < 2:
            threading.Event().wait(0.01)
        gate.set()
        assert all(isinstance(f.result(timeout=10), Completion) for f in futures)
    assert [len(c.calls) for c in copies] == [1, 1]
    assert [c.most_running for c in copies] == [1, 1]


def test_streams_give_their_copy_back_when_done_closed_unstarted_or_failed() -> None:
    copy = FakeResponder()
    pool = ModelPool([copy])
    assert "".join(c.text for c in pool.chat(HI, stream=True)) == "Hello from the fake model"  # exhausted
    unstarted = pool.chat(HI, stream=True)
    unstarted.close()
    partial = pool.chat(HI, stream=True)
    next(partial)
    partial.close()
    assert copy.streams_closed == 2  # the started ones; the unstarted generator never ran
    copy.fail_after = 1
    with pytest.raises(RuntimeError):
        list(pool.chat(HI, stream=True))
    copy.error = InputError("bad")
    with pytest.raises(InputError):
        pool.chat(HI, stream=False)
    copy.error, copy.fail_after = None, None
    assert pool.chat(HI, stream=False).text  # the one copy is still free after all of that
    pool.close()
    assert copy.closed
