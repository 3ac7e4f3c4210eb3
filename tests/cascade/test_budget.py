"""The budget ledger under concurrency and damage: exact counts, no overspending, failing closed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.policy import Budget


def test_concurrent_calls_on_one_ledger_count_every_token(tmp_path: Path) -> None:
    ledger = BudgetLedger(Budget(max_remote_tokens_per_day=10**9), tmp_path / "budget.json")

    def spend() -> None:
        for _ in range(50):
            assert ledger.reserve(10) is None
            ledger.settle(10, 7)

    workers = [threading.Thread(target=spend) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert ledger.spent_today() == 8 * 50 * 7
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_a_burst_cannot_pass_the_same_check_twice(tmp_path: Path) -> None:
    ledger = BudgetLedger(
        Budget(max_remote_tokens_per_day=150, max_remote_tokens_per_request=100), tmp_path / "b.json"
    )
    passed = [ledger.reserve(100) for _ in range(4)]  # four calls in flight, none settled yet
    assert passed.count(None) == 1 and all("daily remote budget" in str(p) for p in passed if p)
    ledger.settle(100, 0)  # the call failed: nothing spent, the hold released
    assert ledger.reserve(100) is None


def test_an_unreadable_ledger_fails_closed_and_is_left_for_a_person(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({date.today().isoformat(): "lots"}))
    ledger = BudgetLedger(Budget(), path)
    why = ledger.reserve(10)
    assert why is not None and "unreadable" in why and str(path) in why
    ledger.record(5)
    assert "lots" in path.read_text()  # not overwritten


def test_processes_sharing_one_ledger_lose_no_spend(tmp_path: Path) -> None:
    """Four processes record 100 calls each on one file: every token is there (the file is updated under
    an exclusive lock on ``budget.json.lock``)."""
    path = tmp_path / "budget.json"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from edgekit.cascade.budget import BudgetLedger\n"
        "from edgekit.cascade.policy import Budget\n"
        "ledger = BudgetLedger(Budget(max_remote_tokens_per_day=10**9), Path(sys.argv[1]))\n"
        "for _ in range(100):\n"
        "    ledger.record(3)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert BudgetLedger(Budget(), path).spent_today() == 4 * 100 * 3
    assert not list(tmp_path.glob(".*.tmp"))
