"""edgekit route / edgekit trace: explain the cascade's decision path; summarise recorded traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgekit.cascade.router import load_router
from edgekit.cascade.trace import TraceStore, stats
from edgekit.cli.render import out, read_text_arg

route_app = typer.Typer(help="Explain how the cascade routes a prompt.", no_args_is_help=True)
trace_app = typer.Typer(help="Inspect recorded cascade traces.", no_args_is_help=True)

PolicyOpt = Annotated[
    Path | None, typer.Option("--policy", help="Cascade policy TOML [default: the shipped one]")
]


@route_app.command("explain")
def explain(
    prompt: Annotated[str, typer.Argument(help="The prompt, or '-' to read it from stdin.")],
    policy: PolicyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision path as JSON.")] = False,
) -> None:
    """Show each gate's decision, the local tiers' signals and the route, without spending remote tokens."""
    text = read_text_arg(prompt)
    with load_router(policy, traces=False) as router:
        result = router.route(text, dry_run=True)
    conf = result.completion.confidence
    data = {
        "route": result.route.replace("degraded:", "would escalate; local fallback ")
        if result.escalation_reason
        else result.route,
        "escalation_reason": result.escalation_reason,
        "gates": [{"gate": g.gate, "verdict": g.verdict, "reason": g.reason} for g in result.gates],
        "rejections": list(result.rejections),
        "local_answer": result.completion.text,
        "signals": {
            "mean_prob": conf.mean_prob,
            "min_prob": conf.min_prob,
            "mean_entropy": conf.mean_entropy,
        },
        "latency_ms": result.latency_ms,
    }
    if as_json:
        out.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False)
        return
    table = Table("gate", "verdict", "reason", box=None, title="gates")
    for g in result.gates:
        table.add_row(g.gate, g.verdict, g.reason)
    out.print(table)
    for rejection in result.rejections:
        out.print(f"not accepted: {rejection}", markup=False)
    out.print(f"route: {data['route']}", markup=False)
    if result.escalation_reason:
        out.print(f"escalation reason: {result.escalation_reason}", markup=False)


@trace_app.command("stats")
def trace_stats(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Trace file [default: EDGEKIT_TRACE_FILE or the user data dir]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Route distribution, escalation rate by reason, p50/p95 latency per route, remote spend."""
    s = stats(TraceStore(file).read())
    if as_json:
        out.print(json.dumps(s, indent=2), markup=False)
        return
    if not s["requests"]:
        out.print("no traces recorded yet")
        return
    out.print(
        f"{s['requests']} requests, {s['degraded']} degraded, remote tokens {s['remote_tokens']}, "
        f"remote cost {s['remote_cost']}",
        markup=False,
    )
    routes = Table("route", "count", "share", box=None)
    for name, r in s["routes"].items():
        routes.add_row(name, str(r["count"]), f"{r['share']:.1%}")
    out.print(routes)
    reasons = Table("escalation reason", "count", "rate", box=None)
    for name, r in s["escalation_reasons"].items():
        reasons.add_row(name, str(r["count"]), f"{r['rate']:.1%}")
    out.print(reasons)
    lat = Table("route", "p50 ms", "p95 ms", "n", box=None)
    for name, r in s["latency_ms"].items():
        lat.add_row(name, f"{r['p50']:.0f}", f"{r['p95']:.0f}", str(r["count"]))
    out.print(lat)
