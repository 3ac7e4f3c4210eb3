"""Remote spend ceilings: per request and per day, persisted so a restart does not reset the day."""

from __future__ import annotations

import json
import os
import threading
from datetime import date
from pathlib import Path

from edgekit.cascade.policy import Budget


class BudgetLedger:
    """Counts remote tokens per calendar day in a small JSON file (written atomically)."""

    def __init__(self, budget: Budget, path: Path | None) -> None:
        self.budget = budget
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}  # used when path is None

    def _read(self) -> dict[str, int]:
        if self.path is None:
            return self._memory
        try:
            data = json.loads(self.path.read_text())
            return {k: int(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def spent_today(self) -> int:
        return self._read().get(date.today().isoformat(), 0)

    def refusal(self, estimate: int) -> str | None:
        """Why a remote call of about ``estimate`` tokens may not be made, or None if it may."""
        ceiling = self.budget.max_remote_tokens_per_request
        if estimate > ceiling:
            return f"request needs ~{estimate} remote tokens > per-request ceiling {ceiling}"
        spent = self.spent_today()
        if spent + estimate > self.budget.max_remote_tokens_per_day:
            return f"daily remote budget spent ({spent} of {self.budget.max_remote_tokens_per_day} tokens)"
        return None

    def record(self, tokens: int) -> None:
        with self._lock:
            data = self._read()
            today = date.today().isoformat()
            data = {today: data.get(today, 0) + tokens}  # older days are not needed
            if self.path is None:
                self._memory = data
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)

    def cost(self, tokens: int) -> float:
        return tokens / 1000 * self.budget.cost_per_1k_tokens
