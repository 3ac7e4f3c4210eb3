"""What a plan's steps built before: one record per step key and output path, checked against the output's
current hash, so a step whose inputs, settings and tools did not change is skipped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from edgekit.compress.pipeline.plan import Plan
from edgekit.compress.step import Step
from edgekit.config import Settings
from edgekit.files import atomic_replace, content_sha256
from edgekit.models.verify import VerifyMemo

Status = Literal["run", "cached", "ran"]


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: Status  # "run": planned and due (dry run); "cached": up to date, skipped; "ran": built now
    sha256: str = ""
    seconds: float = 0.0
    reason: str = ""  # why a step runs: "no record", "output changed", "--force", ...

    def to_dict(self) -> dict[str, Any]:
        d = {**self.step.to_dict(), "status": self.status, "reason": self.reason}
        if self.sha256:
            d["sha256"] = self.sha256
        if self.status == "ran":
            d["seconds"] = round(self.seconds, 2)
        return d


class Records:
    """``compress/steps/<key>-<path hash>.json``: the sha256 of what a step with that key wrote at that path.

    Keyed by path too, so two recipes building the same bytes at different paths do not evict each other.
    """

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.cache_dir / "compress" / "steps"
        self.memo = VerifyMemo(settings.cache_dir / "compress" / "outputs.json")

    def file(self, step: Step) -> Path:
        where = hashlib.sha256(str(step.out).encode()).hexdigest()[:12]
        return self.folder / f"{step.key}-{where}.json"

    def check(self, step: Step) -> tuple[bool, str, str]:
        """(up to date, sha256 of the output, why not)."""
        try:
            rec = json.loads(self.file(step).read_text())
        except (OSError, ValueError):
            return False, "", "not built with these inputs before"
        if not isinstance(rec, dict) or rec.get("out") != str(step.out):
            return False, "", "not built with these inputs before"
        if not step.out.exists():
            return False, "", "output missing"
        sha = self.memo.lookup(step.out)
        if sha is None:
            sha = content_sha256(step.out)
            self.memo.remember(step.out, sha)
        if sha != rec.get("sha256"):
            return False, "", "output changed since it was built"
        return True, sha, ""

    def write(self, step: Step, sha256: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memo.remember(step.out, sha256)
        data = {
            "id": step.id,
            "kind": step.kind,
            "out": str(step.out),
            "sha256": sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_replace(self.file(step), json.dumps(data, indent=1).encode())


def status(p: Plan, *, force: bool = False, settings: Settings | None = None) -> tuple[StepResult, ...]:
    """What a run would do now: each step "cached" (up to date) or "run", with the reason."""
    records = Records(settings or Settings.from_env())
    results = []
    stale: set[str] = set()
    for step in p.steps:
        fresh, sha, why = (False, "", "--force") if force else records.check(step)
        upstream = next((i for i in step.inputs.values() if i in stale), None)
        if fresh and upstream is None:
            results.append(StepResult(step, "cached", sha))
        else:
            results.append(StepResult(step, "run", reason=why or f"{upstream} runs again"))
            stale.add(step.id)
    return tuple(results)
