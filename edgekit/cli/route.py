"""edgekit route / edgekit trace: explain the cascade's decision path; summarise recorded traces."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from edgekit.assistant.loading import load_router
from edgekit.cascade.trace import TraceStore, stats
from edgekit.cli.render import err, out, progress_bar, read_text_arg
from edgekit.errors import InputError
from edgekit.files import atomic_write_text

route_app = typer.Typer(help="Explain how the cascade routes a prompt.", no_args_is_help=True)
trace_app = typer.Typer(help="Inspect recorded cascade traces.", no_args_is_help=True)

PolicyOpt = Annotated[
    Path | None,
    typer.Option("--policy", help="Cascade policy TOML, or a shipped policy's name [default: default]"),
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
    measured = {"mean_prob": conf.mean_prob, "min_prob": conf.min_prob, "mean_entropy": conf.mean_entropy}
    data = {
        "route": result.route.replace("degraded:", "would escalate; local fallback ")
        if result.escalation_reason
        else result.route,
        "escalation_reason": result.escalation_reason,
        "gates": [{"gate": g.gate, "verdict": g.verdict, "reason": g.reason} for g in result.gates],
        "rejections": list(result.rejections),
        "local_answer": result.completion.text,
        "signals": measured,
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
    signals = ", ".join(f"{k} {v:.3f}" for k, v in measured.items() if v is not None) or "none"
    tokens = result.completion.usage.completion_tokens
    out.print(f"local answer: {result.completion.text.strip()!r}", markup=False)
    out.print(f"signals: {signals} ({tokens} tokens, finish {result.completion.finish_reason})", markup=False)
    out.print(f"route: {data['route']}", markup=False)
    if result.escalation_reason:
        out.print(f"escalation reason: {result.escalation_reason}", markup=False)


@route_app.command("calibrate")
def calibrate_cmd(
    observations: Annotated[
        Path, typer.Option("--observations", help="Labeled per-request results (eval-router --observations).")
    ],
    policy: PolicyOpt = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="The labeled prompts they were recorded on [default: the shipped set]"),
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option("--quality", min=0.0, max=1.0, help="Target: keep this share of always-remote quality."),
    ] = None,
    max_remote_share: Annotated[
        float | None,
        typer.Option("--max-remote-share", min=0.0, max=1.0, help="Target: at most this share goes remote."),
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer when recorded.")] = 64,
    write: Annotated[
        Path | None, typer.Option("--out", help="Write the policy with the calibrated threshold here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Choose the first local tier's acceptance threshold for a target on your own labeled traffic:
    chosen on the calibration split, reported on the test split with 95% intervals."""
    from edgekit.cascade.calibrate import calibrate, write_policy
    from edgekit.cascade.evaluation import default_items_path, load_items, observations_from_jsonl, rescore
    from edgekit.cascade.learned import default_embed
    from edgekit.cascade.policy import Policy, resolve_policy

    if quality is None and max_remote_share is None:
        raise InputError("no target given", "Use --quality 0.95 or --max-remote-share 0.3.")
    loaded = Policy.load(resolve_policy(policy))
    items = load_items(data or default_items_path())
    obs = rescore(observations_from_jsonl(observations), items, max_tokens)
    prompts = {i.id: i.prompt for i in items}
    result = calibrate(
        loaded, obs, prompts, quality=quality, max_remote_share=max_remote_share, embed=_lazy(default_embed)
    )
    if write is not None:
        write_policy(loaded, result, write)
    if as_json:
        out.print(
            json.dumps({**result.to_dict(), "out": str(write) if write else None}, indent=2), markup=False
        )
        return
    out.print(
        f"tier {result.tier}: accept.{result.key} = {result.threshold:.4f} ({result.target}; "
        f"chosen on {result.calibration['items']} calibration items)",
        markup=False,
    )
    for split in ("calibration", "test"):
        r = getattr(result, split)
        if not r:
            out.print(f"{split}: no items", markup=False)
            continue
        line = (
            f"{split} ({r['items']} items): quality {r['quality_vs_remote']:.1%} of always-remote, "
            f"remote share {r['remote_share']:.1%} ({_vs_oracle(r['share_vs_oracle'], r['remote_share'])})"
        )
        ci = r["interval_95"]
        if split == "test" and ci.get("quality_vs_remote") and ci.get("share_vs_oracle"):
            q, s = ci["quality_vs_remote"], ci["share_vs_oracle"]
            line += (
                f"; 95% interval: quality {q[0]:.1%}-{q[1]:.1%}, share {s[0]:.2f}x-{s[1]:.2f}x the oracle's"
            )
        out.print(line, markup=False)
    if write is not None:
        out.print(f"wrote {write}", markup=False)


def _lazy(make: Any) -> Any:
    """An embed function that loads the encoder only if called (only accept models with neighbours do)."""
    made: list[Any] = []

    def embed(texts: Any) -> Any:
        if not made:
            made.append(make())
        return made[0](texts)

    return embed


@trace_app.command("stats")
def trace_stats(
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Trace file [default: EDGEKIT_TRACE_FILE or the user data dir]"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    against_shadow: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Project the shadow policy's remote share, tokens, cost and latency (serve --shadow).",
        ),
    ] = False,
) -> None:
    """Route distribution, escalation rate by reason, p50/p95 latency per route, remote spend."""
    store = TraceStore(file)
    if against_shadow:
        _print_compare(store, as_json)
        return
    s = stats(store.read())
    if as_json:
        out.print(json.dumps({"file": str(store.path), **s}, indent=2), markup=False)
        return
    if not s["requests"]:
        out.print(f"no traces recorded yet in {store.path}", markup=False)
        return
    out.print(f"traces: {store.path}", markup=False)
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
    if s["degraded_reasons"]:
        why = Table("degraded because", "count", "rate", box=None)
        for name, r in s["degraded_reasons"].items():
            why.add_row(name, str(r["count"]), f"{r['rate']:.1%}")
        out.print(why)
    lat = Table("route", "p50 ms", "p95 ms", "n", box=None)
    for name, r in s["latency_ms"].items():
        lat.add_row(name, f"{r['p50']:.0f}", f"{r['p95']:.0f}", str(r["count"]))
    out.print(lat)


def _print_compare(store: TraceStore, as_json: bool) -> None:
    from edgekit.cascade.trace import compare

    c = compare(store.read())
    if as_json:
        out.print(json.dumps({"file": str(store.path), **c}, indent=2), markup=False)
        return
    if not c["known"]:
        out.print(
            f"{c['requests']} traces in {store.path} carry a shadow verdict, none of them known "
            "(record some with 'edgekit serve --shadow POLICY')",
            markup=False,
        )
        return
    share, tokens, cost, lat = c["remote_share"], c["remote_tokens"], c["remote_cost"], c["latency_ms"]
    table = Table("", "actual", f"shadow ({c['policy']})", box=None)
    table.add_row("remote share", f"{share['actual']:.1%}", f"{share['shadow']:.1%}")
    table.add_row("remote tokens", str(tokens["actual"]), str(tokens["shadow"]))
    table.add_row("remote cost", str(cost["actual"]), str(cost["shadow"]))
    shadow_lat = lat["shadow"] or {"p50": float("nan"), "p95": float("nan")}
    table.add_row("latency p50 ms", f"{lat['actual']['p50']:.0f}", f"{shadow_lat['p50']:.0f}")
    table.add_row("latency p95 ms", f"{lat['actual']['p95']:.0f}", f"{shadow_lat['p95']:.0f}")
    out.print(table)
    moved = ", ".join(f"{v} {k}" for k, v in c["switches"].items()) or "none"
    out.print(
        f"{c['known']} requests with a known shadow verdict ({c['unknown']} unknown: the shadow needed an "
        f"answer they did not produce); switches: {moved}",
        markup=False,
    )


def _vs_oracle(ratio: float, share: float) -> str:
    return f"{share:.1%} (the oracle's is 0%)" if ratio == float("inf") else f"{ratio:.2f}x the oracle's"


def eval_router(
    policy: PolicyOpt = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Labeled prompts (JSONL) [default: the shipped set]")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per answer.")] = 64,
    target: Annotated[
        float, typer.Option("--target", help="Quality to keep, as a share of always-remote.")
    ] = 0.95,
    observations: Annotated[
        Path | None,
        typer.Option(
            "--observations",
            help="Also write per-item results (JSONL); kept in FILE.partial until the run completes.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Reuse results in the --observations file (or its .partial) for unchanged items; "
            "same models, policy and --max-tokens assumed.",
        ),
    ] = False,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--from-observations",
            help="Re-score saved per-item results with the current checks; no model runs.",
        ),
    ] = None,
    calibrate_on: Annotated[
        Path | None,
        typer.Option(
            "--calibrate-on",
            help="Choose thresholds on the calibration split of these saved results of the shipped set "
            "(not on --data's own): for a test-only set of another distribution.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Router evaluation: always-local, always-remote, oracle and the cascade's quality/remote-share curve."""
    from edgekit.cascade.evaluation import (
        default_items_path,
        learned_features,
        load_items,
        observations_from_jsonl,
        observations_to_jsonl,
        observe_to_file,
        rescore,
        summarize,
    )

    items = load_items(data or default_items_path())
    calibration, prompts = None, {i.id: i.prompt for i in items}
    if calibrate_on is not None:
        shipped = load_items(default_items_path())
        calibration = rescore(observations_from_jsonl(calibrate_on), shipped, max_tokens)
        prompts = {**{i.id: i.prompt for i in shipped}, **prompts}
    if resume and observations is None:
        raise InputError("--resume needs --observations FILE", "Name the file an earlier run wrote.")
    if replay is not None:
        obs = rescore(observations_from_jsonl(replay), items, max_tokens)
        if observations:
            atomic_write_text(observations, observations_to_jsonl(obs))
    else:
        with load_router(policy, traces=False) as router, progress_bar() as progress:
            obs, reused = observe_to_file(
                router,
                items,
                observations,
                resume=resume,
                max_tokens=max_tokens,
                progress=lambda d, t: progress("answer prompts", d, t),
            )
        if reused:
            err.print(f"reused {reused} saved answers; asked {len(obs) - reused} prompts", markup=False)
    from edgekit.cascade.learned import NEIGHBOURS, default_embed
    from edgekit.errors import MissingDependencyError

    embed = None
    source = obs if calibration is None else calibration  # as summarize chooses its calibration split
    if NEIGHBOURS in learned_features([o for o in source if o.split == "calibration"]):
        with contextlib.suppress(MissingDependencyError):  # the report then says why it skipped it
            embed = default_embed()
    report = summarize(obs, target=target, prompts=prompts, embed=embed, calibration=calibration)
    if "learned_skipped" in report:
        err.print(f"learned acceptance skipped: {report['learned_skipped']}", markup=False)
    if as_json:
        out.print(json.dumps(report, indent=2), markup=False)
        return
    test = report["test"]
    table = Table("policy (test split)", "quality", "remote share", box=None)
    for name in ("always_local", "always_remote", "oracle", "cascade"):
        table.add_row(name, f"{test[name]['quality']:.1%}", f"{test[name]['remote_share']:.1%}")
    parts: list[tuple[str, dict[str, Any]]] = [("mean-probability threshold", report)]
    if "learned" in report:
        learned = report["learned"]["test"]["cascade"]
        table.add_row("learned acceptance", f"{learned['quality']:.1%}", f"{learned['remote_share']:.1%}")
        parts.append((f"learned acceptance ({', '.join(report['learned']['features'])})", report["learned"]))
    out.print(table)
    for label, part in parts:
        t = part["test"]
        out.print(
            f"{label}: threshold {part['threshold']:.3f} (chosen on calibration); "
            f"quality {t['quality_vs_remote']:.1%} of always-remote; "
            f"remote share {_vs_oracle(t['share_vs_oracle'], t['cascade']['remote_share'])}; "
            f"remote tokens saved {t['remote_tokens_saved']:.1%}",
            markup=False,
        )
        if (ci := t.get("interval_95")) and ci.get("quality_vs_remote") and ci.get("share_vs_oracle"):
            q, r = ci["quality_vs_remote"], ci["share_vs_oracle"]
            out.print(
                f"  95% interval (bootstrap over test items): quality {q[0]:.1%}-{q[1]:.1%}, "
                f"remote share {r[0]:.2f}x-{r[1]:.2f}x the oracle's",
                markup=False,
            )
        if (best := t["curve_at_target"]) is not None:
            out.print(
                f"  read off the test curve: {target:.0%} of always-remote needs {best['remote_share']:.1%} "
                f"remote calls ({_vs_oracle(best['share_vs_oracle'], best['remote_share'])})",
                markup=False,
            )
    if "chain" in report:
        chain, c = report["chain"], report["chain"]["test"]
        q, r = c["interval_95"]["quality_vs_remote"], c["interval_95"]["share_vs_oracle"]
        out.print(
            f"cross-check answer as a tier (thresholds {chain['tiny_threshold']:.3f}, "
            f"{chain['check_threshold']:.3f}, chosen on calibration): "
            f"quality {c['quality_vs_remote']:.1%} of always-remote ({q[0]:.1%}-{q[1]:.1%}); "
            f"remote share {c['remote_share']:.1%}, "
            f"{_vs_oracle(c['share_vs_oracle'], c['remote_share'])} ({r[0]:.2f}x-{r[1]:.2f}x); "
            f"cross-check answers kept {c['check_share']:.1%}; "
            f"extra local generations {c['extra_local_generations']:.1%}",
            markup=False,
        )
