"""Remote spend ceilings: per request and per day, persisted so a restart does not reset the day.

One ledger serves every router copy of a process (``edgekit.Assistant`` shares it), and a call holds its
estimate from the check until it is settled, so a burst of concurrent requests cannot all pass the same
check and overspend. A ledger file that cannot be read fails closed: no remote call until it is fixed.

Several processes may share one file: every update reads, adds and writes it under an exclusive lock on a
sidecar ``<file>.lock`` (``flock``), so no process's spend is lost. Holds are per process: two processes
may each pass a check that the other's calls in flight would have failed, by at most one request each.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from edgekit.cascade.policy import Budget
from edgekit.files import atomic_replace, exclusive_lock


class LedgerUnreadable(Exception):
    """The ledger file exists but does not hold a day -> tokens map."""


class BudgetLedger:
    """Counts remote tokens per calendar day in a small JSON file (written atomically). Thread-safe."""

    def __init__(self, budget: Budget, path: Path | None) -> None:
        self.budget = budget
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}  # used when path is None
        self._held = 0  # estimates of calls in flight, reserved but not settled

    def _read(self) -> dict[str, int]:
        if self.path is None:
            return self._memory
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise LedgerUnreadable(f"cannot read it ({e.strerror})") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return {str(k): int(v) for k, v in data.items()}
        except (ValueError, TypeError) as e:
            raise LedgerUnreadable(f"it is not a day -> tokens map ({e})") from None

    def spent_today(self) -> int:
        return self._read().get(date.today().isoformat(), 0)

    def refusal(self, estimate: int) -> str | None:
        """Why a remote call of about ``estimate`` tokens may not be made, or None if it may (nothing is
        held: ``reserve`` before a real call)."""
        with self._lock:
            return self._refusal(estimate)

    def reserve(self, estimate: int) -> str | None:
        """Like ``refusal``, and when the call may go ahead its estimate is held until ``settle``."""
        with self._lock:
            why = self._refusal(estimate)
            if why is None:
                self._held += estimate
            return why

    def settle(self, estimate: int, tokens: int) -> None:
        """Release a reservation and record what the call really spent (0 when it failed)."""
        with self._lock:
            self._held = max(0, self._held - estimate)
            if tokens:
                self._record(tokens)

    def record(self, tokens: int) -> None:
        with self._lock:
            self._record(tokens)

    def _refusal(self, estimate: int) -> str | None:
        ceiling = self.budget.max_remote_tokens_per_request
        if estimate > ceiling:
            return f"request needs ~{estimate} remote tokens > per-request ceiling {ceiling}"
        try:
            spent = self.spent_today() + self._held
        except LedgerUnreadable as e:
            return f"the budget ledger {self.path} is unreadable: {e}; fix or delete it"
        if spent + estimate > self.budget.max_remote_tokens_per_day:
            return f"daily remote budget spent ({spent} of {self.budget.max_remote_tokens_per_day} tokens)"
        return None

    def _record(self, tokens: int) -> None:
        with self._file_lock():
            try:
                data = self._read()
            except LedgerUnreadable:
                return  # refusal() already stops further calls; never overwrite what a person may repair
            today = date.today().isoformat()
            data = {today: data.get(today, 0) + tokens}  # older days are not needed
            if self.path is None:
                self._memory = data
                return
            atomic_replace(self.path, json.dumps(data).encode())

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Exclusive across processes (the thread lock is held already); nothing for an in-memory ledger."""
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            yield

    def cost(self, tokens: int) -> float:
        return tokens / 1000 * self.budget.cost_per_1k_tokens
