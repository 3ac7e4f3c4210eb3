"""edgekit bench: edgekit's local path against raw llama-cpp-python, same model, same run."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import edgekit
from edgekit.bench import BenchReport, run_bench
from edgekit.cli.options import ModelOpt
from edgekit.cli.render import err, out, progress_bar
from edgekit.config import Settings, default_threads
from edgekit.errors import InputError


def bench(
    model: ModelOpt = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Tokens generated per run.")] = 128,
    runs: Annotated[int, typer.Option("--runs", help="Measured runs per worker (after one warm-up).")] = 3,
    rounds: Annotated[int, typer.Option("--rounds", help="Worker processes per side, in ABBA order.")] = 2,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads, same for both sides.")
    ] = None,
    n_ctx: Annotated[int, typer.Option("--n-ctx", help="Context window for both sides.")] = 2048,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    contended: Annotated[
        bool,
        typer.Option(
            "--contended",
            help="Also run beside a process that keeps one core busy; edgekit picks its threads itself "
            "unless --threads is given.",
        ),
    ] = False,
) -> None:
    """Prompt and generation tok/s, time to first token and peak RSS, with ratios to raw llama-cpp-python."""
    if runs < 1 or rounds < 1 or max_tokens < 2:
        raise InputError("--runs and --rounds must be >= 1 and --max-tokens >= 2")
    if model and Path(model).expanduser().exists():
        path, name = Path(model).expanduser(), Path(model).name
    else:
        with progress_bar() as progress:
            path = edgekit.pull(model, progress=progress)
        name = model or edgekit.lockfile().default
    if path.is_dir():
        raise InputError(f"{name} is not a GGUF file; bench compares against raw llama-cpp-python")
    if not as_json:
        what = f"raw llama-cpp-python and edgekit, {rounds} workers x {runs} runs each"
        err.print(f"[dim]benchmarking {name}: {what}...[/dim]")
    fixed = threads or Settings.from_env().threads
    threads = fixed or default_threads()
    measure = partial(
        run_bench,
        path,
        model=name,
        threads=threads,
        n_ctx=n_ctx,
        max_tokens=max_tokens,
        runs=runs,
        rounds=rounds,
    )
    if contended:
        reports = [measure(contended=busy, adaptive=fixed is None) for busy in (False, True)]
        _print_contended(name, threads, fixed is None, reports, as_json)
        return
    report = measure()
    if as_json:
        out.print(json.dumps(report.to_dict(), indent=2), markup=False)
        return
    table = Table(title=f"{name} ({report.model_size_mb:.0f} MB, {report.threads} threads)", box=None)
    for col in ("", "raw llama-cpp-python", "edgekit", "ratio / delta"):
        table.add_column(col, justify="right")
    r, e = report.raw, report.edgekit
    table.add_row(
        "prompt tok/s", f"{r.prompt_tok_s:.1f}", f"{e.prompt_tok_s:.1f}", f"{report.prompt_ratio:.3f}x"
    )
    table.add_row("generation tok/s", f"{r.gen_tok_s:.1f}", f"{e.gen_tok_s:.1f}", f"{report.gen_ratio:.3f}x")
    table.add_row(
        "time to first token",
        f"{r.ttft_ms:.1f} ms",
        f"{e.ttft_ms:.1f} ms",
        f"{report.ttft_overhead_ms:+.1f} ms",
    )
    table.add_row(
        "peak RSS",
        f"{r.peak_rss_mb:.0f} MB",
        f"{e.peak_rss_mb:.0f} MB",
        f"model + {e.peak_rss_mb - report.model_size_mb:.0f} MB",
    )
    table.add_row("load", f"{r.load_s:.2f} s", f"{e.load_s:.2f} s", "")
    out.print(table)
    out.print(
        f"prompt {e.prompt_tokens} tokens, generated {e.gen_tokens}; greedy outputs "
        + ("match" if report.same_output else "DIFFER"),
        markup=False,
    )


def _print_contended(
    name: str, threads: int, adaptive: bool, reports: list[BenchReport], as_json: bool
) -> None:
    idle, busy = reports
    if as_json:
        out.print(json.dumps({"idle": idle.to_dict(), "contended": busy.to_dict()}, indent=2), markup=False)
        return
    mine = f"auto, up to {threads}" if adaptive else str(threads)
    table = Table(title=f"{name}: raw llama-cpp-python at {threads} threads, edgekit at {mine}", box=None)
    for col in ("generation tok/s", "raw llama-cpp-python", "edgekit", "ratio"):
        table.add_column(col, justify="right")
    for label, r in (("idle", idle), ("one core busy", busy)):
        table.add_row(label, f"{r.raw.gen_tok_s:.1f}", f"{r.edgekit.gen_tok_s:.1f}", f"{r.gen_ratio:.3f}x")
    out.print(table)
    worst = busy.edgekit.gen_tok_s / max(idle.edgekit.gen_tok_s, 1e-9)
    out.print(f"edgekit with one core busy keeps {worst:.2f}x of its idle speed", markup=False)
