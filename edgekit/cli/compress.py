"""edgekit compress RECIPE: build every target of a recipe, skipping steps whose inputs did not change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgekit.cli.render import err, out, progress_bar
from edgekit.compress.pipeline import GateOutcome, Plan, RunResult, StepResult, gate_error, plan, run, status
from edgekit.compress.recipe import load_recipe
from edgekit.evaluate.gates import fmt


def compress(
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML (see 'Recipes' in the README).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and which steps would run; build nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Run every step, even those up to date.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan or the run as JSON.")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Write the targets here instead of the recipe's [output] dir (which must lie under the "
            "recipe's folder or the working directory).",
        ),
    ] = None,
) -> None:
    """Build a recipe's targets (cached by input hashes), pin them in models.lock, run its eval gate."""
    p = plan(load_recipe(recipe, out_dir=out_dir))
    for warning in p.warnings:
        err.print(f"warning: {warning}", markup=False)
    if dry_run:
        steps = status(p, force=force)
        if json_out:
            out.print_json(json.dumps(_plan_json(p, steps)))
        else:
            _render_plan(p, steps)
        return
    with progress_bar() as progress:
        result = run(p, force=force, progress=progress, on_step=_step_line)
    if json_out:
        out.print_json(json.dumps(result.to_dict()))
    else:
        _render_result(result)
    if not result.passed:
        raise gate_error(result)


def _plan_json(p: Plan, steps: tuple[StepResult, ...]) -> dict[str, Any]:
    return {
        "recipe": str(p.recipe.path),
        "recipe_sha256": p.recipe.sha256,
        "source": {"spec": p.source.spec, "format": p.source.format, "sha256": p.source.sha256},
        "steps": [s.to_dict() for s in steps],
        "warnings": list(p.warnings),
    }


def _describe(r: StepResult) -> str:
    s = r.step
    if s.target is not None:
        return f"{s.target.format} {s.target.type} -> {s.out}"
    if s.kind == "eval":
        return f"{s.inputs['candidate'].removeprefix('target:')} against {s.inputs['baseline']}"
    what = {
        "dequantize": "GGUF -> Hugging Face folder (float32)",
        "distill": "depth-pruned student",
        "convert": "Hugging Face folder -> GGUF",
        "imatrix": "importance matrix from the calibration text",
        "export": "Hugging Face folder -> ONNX (float)",
    }.get(s.kind, s.kind)
    settings = ", ".join(f"{k}={v}" for k, v in s.config.items() if k != "suite_sha256")
    return f"{what} ({settings})" if settings else what


def _render_plan(p: Plan, steps: tuple[StepResult, ...]) -> None:
    src = p.source
    out.print(
        f"plan for {p.recipe.path.name}: {src.spec} ({src.format}, sha256 {src.sha256[:12]})", markup=False
    )
    for i, r in enumerate(steps, 1):
        inputs = ", ".join(
            f"{k}={Path(v[5:]).name if v.startswith('file:') else v}" for k, v in r.step.inputs.items()
        )
        verdict = "up to date" if r.status == "cached" else f"runs: {r.reason}"
        out.print(f"{i}. {r.step.id}: {_describe(r)}", markup=False)
        out.print(f"   inputs {inputs}; key {r.step.key[:12]}; {verdict}", markup=False)
    due = sum(r.status == "run" for r in steps)
    out.print(f"{due} of {len(steps)} steps would run", markup=False)


def _step_line(r: StepResult, index: int, total: int) -> None:
    head = f"[{index}/{total}] {r.step.id}"
    if r.status == "cached":
        err.print(f"{head}: up to date, skipped ({r.sha256[:12]})", markup=False)
    elif r.status == "run":
        err.print(f"{head}: running ({r.reason})", markup=False)
    else:
        err.print(f"{head}: done in {r.seconds:.1f} s ({r.sha256[:12]})", markup=False)


def _render_result(result: RunResult) -> None:
    ran = sum(s.status == "ran" for s in result.steps)
    cached = sum(s.status == "cached" for s in result.steps)
    out.print(
        f"edgekit compress {result.plan.recipe.path.name}: {ran} ran, {cached} up to date", markup=False
    )
    for t in result.plan.recipe.targets:
        out.print(f"  {t.name}: {t.out}", markup=False)
    for g in result.gates:
        _render_gates(g)


def _render_gates(g: GateOutcome) -> None:
    verdict = (
        "[green]PASS[/]" if g.passed else f"[bold red]FAIL[/]: {len(g.failures)} of {len(g.gates)} gates"
    )
    out.print(f"eval {g.target} against {g.baseline}: {verdict} (report: {g.report})")
    table = Table(box=None, pad_edge=False)
    for col, justify in (
        ("", "left"),
        ("gate", "left"),
        ("value", "right"),
        ("threshold", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    order = {"fail": 0, "pass": 1, "skipped": 2}
    style = {"fail": "bold red", "pass": "green", "skipped": "dim"}
    for gate in sorted(g.gates, key=lambda x: order.get(str(x.get("status")), 3)):
        st = str(gate.get("status"))
        is_max = str(gate.get("gate", "")).startswith("max_")
        op = ("<=" if is_max else ">=") if st != "fail" else (">" if is_max else "<")
        value, margin = gate.get("value"), gate.get("margin")
        note = (
            f"{'over' if is_max else 'under'} by {fmt(abs(margin))}"
            if st == "fail" and margin is not None
            else ""
        )
        table.add_row(
            f"[{style.get(st, '')}]{st.upper()}[/]",
            str(gate.get("name")),
            "-" if value is None else fmt(value),
            f"{op} {fmt(float(gate.get('threshold', 0.0)))}",
            note,
        )
    out.print(table)
