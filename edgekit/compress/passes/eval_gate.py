"""The pipeline's ``eval`` step: a recipe's drift gate, candidate target against its baseline on the
recipe's suite, written as the eval report (JSON) that the run reads its verdict from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext


class Evaluate:
    def run(self, ctx: StepContext) -> None:
        from edgekit.evaluate import run_eval

        report = run_eval(
            ctx.inputs["baseline"],
            ctx.inputs["candidate"],
            suite=Path(ctx.step.config["suite"]),
            settings=ctx.settings,
            progress=ctx.progress,
        )
        ctx.out.write_text(report.to_json() + "\n", encoding="utf-8")
