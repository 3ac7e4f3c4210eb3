"""Threads per generation: fewer while other processes keep cores busy, shared among generations of this
process, as configured where the caller fixed them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.runtime import threads


@pytest.fixture
def spinner() -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_busy_neighbour_is_seen_and_leaves_its_core_alone(spinner: None) -> None:
    cores = threads._cores()
    busy = threads.busy_elsewhere()
    assert busy is not None and busy >= 1
    assert threads.claim_threads(1, cores) <= cores - 1 or cores == 1
    threads.release_threads(1)


def test_generations_of_one_process_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0)
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    try:
        assert threads.claim_threads(1, 3) == 3
        assert threads.claim_threads(2, 3) == 1  # one core is left
        assert threads.claim_threads(1, 3) == 3  # a re-check does not count the claim against itself
        threads.release_threads(2)
        assert threads.claim_threads(3, 2) == 1
        assert threads.claim_threads(4, 2, adaptive=False) == 2  # fixed by the caller: kept
    finally:
        for key in (1, 2, 3, 4):
            threads.release_threads(key)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: None)  # no /proc: as configured
    assert threads.claim_threads(5, 2) == 2
    threads.release_threads(5)


@pytest.mark.model
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_generation_beside_a_busy_neighbour_uses_fewer_threads_and_answers_the_same(
    default_model_path: Path, spinner: None
) -> None:
    from edgekit.config import default_threads
    from edgekit.runtime.llamacpp import LlamaCppBackend
    from edgekit.runtime.types import GenerationParams

    if default_threads() < 2:
        pytest.skip("one thread is all this machine gives a model")
    params = GenerationParams(max_tokens=40, temperature=0.0)
    msgs = [{"role": "user", "content": "Write a short story about a dragon who learns to paint."}]
    adaptive = LlamaCppBackend(default_model_path, n_ctx=512)
    fixed = LlamaCppBackend(default_model_path, n_ctx=512, threads=1)
    try:
        text = "".join(c.text for c in adaptive.stream(msgs, params))  # type: ignore[arg-type]
        assert adaptive._threads <= max(1, threads._cores() - 1)  # the neighbour's core is left to it
        assert text == "".join(c.text for c in fixed.stream(msgs, params))  # type: ignore[arg-type]
    finally:
        adaptive.close()
        fixed.close()
