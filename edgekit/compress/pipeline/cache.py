"""What a plan's steps built before: one record per step key and output path, checked against the output's
current hash, so a step whose inputs, settings and tools did not change is skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from edgekit.compress.pipeline.plan import Plan
from edgekit.compress.step import Records, Step
from edgekit.config import Settings

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
