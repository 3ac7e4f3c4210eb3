"""A Markdown summary for CI logs and pull-request comments (GitHub renders the tables)."""

from __future__ import annotations

from edgekit.evaluate.gates import fmt
from edgekit.evaluate.report import EvalReport


def _num(v: float | None, spec: str = ".4g") -> str:
    return "-" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def to_markdown(report: EvalReport) -> str:
    b, c = report.baseline, report.candidate
    failed = report.failures
    verdict = "PASS" if report.passed else f"FAIL ({len(failed)} of {len(report.gates)} gates)"
    lines = [
        f"## edgekit eval: {verdict}",
        "",
        f"- baseline: `{b.name}` ({b.format}, {b.size_bytes / 1e6:,.1f} MB, sha256 `{b.sha256[:12]}`)",
        f"- candidate: `{c.name}` ({c.format}, {c.size_bytes / 1e6:,.1f} MB, sha256 `{c.sha256[:12]}`)",
        f"- suite: `{report.suite_path or '(in code)'}`, {report.overall.tokens} scored tokens, "
        f"{report.timings.get('total', 0.0):.1f} s",
        "",
        "### Gates",
        "",
        "| status | gate | value | threshold | margin |",
        "|---|---|---:|---:|---:|",
    ]
    order = {"fail": 0, "skipped": 2, "pass": 1}
    for g in sorted(report.gates, key=lambda g: order[g.status]):
        value = "-" if g.value is None else fmt(g.value)
        margin = "-" if g.margin is None else fmt(g.margin)
        lines.append(f"| {g.status.upper()} | `{g.name}` | {value} | {fmt(g.threshold)} | {margin} |")
    lines += [
        "",
        "### Drift by slice",
        "",
        "| slice | tokens | mean KLD | p99 KLD | max KLD | top-1 | top-p RMS | ppl base | ppl cand | ratio "
        "| KLD |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [(s.name, s.summary, s.kld_method) for s in report.slices] + [("**all**", report.overall, "")]
    for name, d, method in rows:
        lines.append(
            f"| {name} | {d.tokens} | {d.mean_kld:.4f} | {d.p99_kld:.4f} | {d.max_kld:.3f} "
            f"| {_pct(d.top1)} | {d.top_p_rms:.4f} | {d.ppl_baseline:.3f} | {d.ppl_candidate:.3f} "
            f"| {d.ppl_ratio:.4f} | {method} |"
        )
    if report.tasks is not None:
        tb, tc = report.tasks
        lines += ["", "### Tasks", "", "| metric | baseline | candidate | delta |", "|---|---:|---:|---:|"]
        for label, x, y in (
            ("JSON-schema validity", tb.json_validity, tc.json_validity),
            ("refusal rate, should refuse", tb.refusal_rate_refuse, tc.refusal_rate_refuse),
            ("refusal rate, should comply", tb.refusal_rate_comply, tc.refusal_rate_comply),
            ("exact match", tb.exact_match, tc.exact_match),
        ):
            delta = "-" if x is None or y is None else f"{100 * (y - x):+.0f} pts"
            lines.append(f"| {label} | {_pct(x)} | {_pct(y)} | {delta} |")
    sb, sc = report.speed
    lines += [
        "",
        "### Speed and size",
        "",
        "| | baseline | candidate |",
        "|---|---:|---:|",
        f"| generation tok/s | {_num(sb.gen_tok_s, '.1f')} | {_num(sc.gen_tok_s, '.1f')} |",
        f"| time to first token (ms) | {_num(sb.ttft_ms, '.1f')} | {_num(sc.ttft_ms, '.1f')} |",
        f"| scoring tok/s | {_num(sb.scoring_tok_s, '.1f')} | {_num(sc.scoring_tok_s, '.1f')} |",
        f"| file size (MB) | {sb.size_bytes / 1e6:,.1f} | {sc.size_bytes / 1e6:,.1f} |",
        "",
    ]
    return "\n".join(lines)
