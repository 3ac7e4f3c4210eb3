"""How many threads a local generation should use right now.

llama.cpp's worker threads spin while they wait for each other, so a generation with as many threads as
there are cores collapses when another process needs one of them (``edgekit bench --contended`` on 2
cores with one busy: raw llama-cpp-python at 2 threads 27 tok/s, edgekit choosing its threads 62), while
idle the second thread is worth having (``edgekit bench --threads 1`` against ``--threads 2``). A static
choice loses one way or the other, so a backend whose thread count was not fixed by the caller
asks before each generation (and every ``RECHECK_TOKENS`` tokens) how many cores other processes keep
busy, and uses the rest.

Generations running at once in this process (``serve --concurrency``) share the cores the same way.
"Busy elsewhere" is the kernel's count of runnable tasks (``procs_running`` in ``/proc/stat``) minus this
process's own runnable threads (``/proc/self/task/*/stat``), the smallest of a few samples a millisecond
apart (a task that merely woke up is not a neighbour). Where ``/proc`` is not there (not Linux), the
thread count stays as configured.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

RECHECK_TOKENS = 64
SAMPLES = 3


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _runnable_system() -> int:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("procs_running "):
                return int(line.split()[1])
    raise OSError("no procs_running in /proc/stat")


def _runnable_here() -> int:
    n = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            state = (task / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # a thread that ended while we looked
        n += state == "R"
    return n


def busy_elsewhere() -> int | None:
    """Cores that other processes keep busy now, or None where that cannot be read."""
    samples = []
    try:
        for i in range(SAMPLES):
            if i:
                time.sleep(0.001)
            samples.append(_runnable_system() - _runnable_here())
    except (OSError, ValueError):
        return None
    return max(0, min(samples))


_lock = threading.Lock()
_running: dict[int, int] = {}
"""Generations running in this process now: key -> threads each uses (they count against the cores too)."""


def claim_threads(key: int, most: int, *, adaptive: bool = True) -> int:
    """Threads for the generation ``key`` now: up to ``most``, one per core that neither another process
    nor another generation of this process is using (``most`` itself when not ``adaptive``). Recorded
    until ``release_threads(key)``."""
    with _lock:
        here = sum(n for k, n in _running.items() if k != key)
    n = most
    if adaptive and most > 1:
        busy = busy_elsewhere()
        if busy is not None:
            n = max(1, min(most, _cores() - busy - here))
    with _lock:
        _running[key] = n
    return n


def release_threads(key: int) -> None:
    with _lock:
        _running.pop(key, None)
