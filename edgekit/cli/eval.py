"""edgekit eval: the quality-drift gate. Exit 0 when every gate passes, 1 when any fails, 2 on bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgekit.cli.render import err, out, progress_bar
from edgekit.errors import CheckFailedError
from edgekit.evaluate import EvalReport, run_eval
from edgekit.evaluate.gates import fmt
from edgekit.files import atomic_write_text

ReportOpt = Annotated[Path | None, typer.Option(dir_okay=False, writable=True)]


def eval_(
    baseline: Annotated[
        str,
        typer.Option("--baseline", "-b", help="Reference model: models.lock name, GGUF file or ONNX folder."),
    ],
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate", "-c", help="Model under test: models.lock name, GGUF file or ONNX folder."
        ),
    ],
    suite: Annotated[
        Path | None, typer.Option("--suite", help="Suite TOML [default: recipes/evals/default.toml].")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML (a test case per gate).")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write an HTML report with plots.")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Score the baseline live (exact KLD); skip the baseline cache.")
    ] = False,
) -> None:
    """Compare a candidate build with its baseline: drift, tasks, speed; exit 1 if a gate fails."""
    if html_out is not None:
        from edgekit.evaluate.html import require_matplotlib

        require_matplotlib()  # fail before minutes of scoring, not after
    with progress_bar() as progress:
        report = run_eval(baseline, candidate, suite=suite, cache=not no_cache, progress=progress)
    _write_reports(report, json_out, junit, markdown, html_out)
    _render(report)
    if not report.passed:
        failed = report.failures
        names = ", ".join(g.name for g in failed[:3]) + (", ..." if len(failed) > 3 else "")
        raise CheckFailedError(
            f"{len(failed)} of {len(report.gates)} gates failed: {names}",
            "See the table above for each gate's value and threshold.",
        )


def _write_reports(
    report: EvalReport,
    json_out: Path | None,
    junit: Path | None,
    markdown: Path | None,
    html_out: Path | None,
) -> None:
    if json_out:
        atomic_write_text(json_out, report.to_json() + "\n")
    if junit:
        from edgekit.evaluate.junit import to_junit

        atomic_write_text(junit, to_junit(report))
    if markdown:
        from edgekit.evaluate.markdown import to_markdown

        atomic_write_text(markdown, to_markdown(report))
    if html_out:
        from edgekit.evaluate.html import to_html

        atomic_write_text(html_out, to_html(report))
    for path in (json_out, junit, markdown, html_out):
        if path:
            err.print(f"[dim]wrote {path}[/dim]", markup=True, highlight=False)


def _render(report: EvalReport) -> None:
    b, c = report.baseline, report.candidate
    out.print(f"edgekit eval: {c.name} ({c.format}) against {b.name} ({b.format})", markup=False)
    slices = Table(box=None, pad_edge=False)
    for col in ("slice", "tokens", "mean KLD", "p99 KLD", "max KLD", "top-1", "ppl ratio", "KLD from"):
        slices.add_column(col, justify="left" if col in ("slice", "KLD from") else "right")
    rows = [
        (s.name, s.summary, "live" if s.kld_method == "exact" else f"cache (top-{report.top_k})")
        for s in report.slices
    ]
    for name, d, source in [*rows, ("all", report.overall, "")]:
        slices.add_row(
            name,
            str(d.tokens),
            f"{d.mean_kld:.4f}",
            f"{d.p99_kld:.4f}",
            f"{d.max_kld:.3f}",
            f"{100 * d.top1:.1f}%",
            f"{d.ppl_ratio:.4f}",
            source,
        )
    out.print(slices)
    if report.tasks is not None:
        tb, tc = report.tasks

        def pair(x: float | None, y: float | None) -> str:
            return "-" if x is None or y is None else f"{100 * x:.0f}% -> {100 * y:.0f}%"

        out.print(
            f"tasks: JSON valid {pair(tb.json_validity, tc.json_validity)}, refused harmful "
            f"{pair(tb.refusal_rate_refuse, tc.refusal_rate_refuse)}, refused harmless "
            f"{pair(tb.refusal_rate_comply, tc.refusal_rate_comply)}, exact match "
            f"{pair(tb.exact_match, tc.exact_match)}",
            markup=False,
        )
    sb, sc = report.speed
    if sb.gen_tok_s is not None and sc.gen_tok_s is not None:
        out.print(
            f"speed: {sb.gen_tok_s:.1f} -> {sc.gen_tok_s:.1f} tok/s, "
            f"TTFT {sb.ttft_ms:.0f} -> {sc.ttft_ms:.0f} ms; "
            f"size {sb.size_bytes / 1e6:,.1f} -> {sc.size_bytes / 1e6:,.1f} MB",
            markup=False,
        )
    gates = Table(box=None, pad_edge=False)
    gates.add_column("", no_wrap=True)
    gates.add_column("gate", no_wrap=True)
    for col in ("value", "threshold"):
        gates.add_column(col, justify="right", no_wrap=True)
    gates.add_column("", overflow="fold")
    order = {"fail": 0, "pass": 1, "skipped": 2}
    style = {"fail": "bold red", "pass": "green", "skipped": "dim"}
    for g in sorted(report.gates, key=lambda g: order[g.status]):
        op = ("<=" if g.is_max else ">=") if g.status != "fail" else (">" if g.is_max else "<")
        note = ""
        if g.status == "fail" and g.margin is not None:
            note = f"{'over' if g.is_max else 'under'} by {fmt(abs(g.margin))}"
        elif g.status == "skipped":
            note = "not measured"
        gates.add_row(
            f"[{style[g.status]}]{g.status.upper()}[/]",
            g.name,
            "-" if g.value is None else fmt(g.value),
            f"{op} {fmt(g.threshold)}",
            note,
            style=None,
        )
    out.print(gates)
    failed = len(report.failures)
    verdict = "[green]PASS[/]" if not failed else f"[bold red]FAIL[/]: {failed} of {len(report.gates)} gates"
    out.print(f"{verdict} ({report.timings.get('total', 0.0):.1f} s)")
