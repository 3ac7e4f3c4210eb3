"""A one-file HTML report: the tables of the Markdown summary plus plots drawn as inline SVG.

Plots: one small panel per gate (every scope it is checked on: slices, "all", tasks, speed), each bar
colored by its verdict (red fail, green pass) with the threshold drawn across it and the value written
on it, so a reader sees at a glance which gates failed and by how much; a histogram of per-position KL
divergence per slice, each slice normalized to its own positions (a long slice does not flatten the
others); and a scatter of the baseline's probability of its top token against the candidate's
probability of that same token. Needs matplotlib (the ``report`` extra); matplotlib's object API is used
without pyplot, so no global backend or state is touched.
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np

from edgekit.errors import MissingDependencyError
from edgekit.evaluate.gates import GateResult, fmt
from edgekit.evaluate.report import EvalReport

MAX_SCATTER = 4000
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ddd;padding:.25rem .6rem}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.fail{color:#b00020;font-weight:600}.pass{color:#1b7f3b}.skipped{color:#777}
figure{margin:1rem 0}figcaption{color:#555}code{background:#f4f4f4;padding:0 .2rem}
figure svg{width:100%;height:auto}
"""
FAIL, PASS = "#b00020", "#1b7f3b"
GATES_PER_ROW = 3


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "the HTML report needs matplotlib, which is not installed",
            "pip install 'edgekit[report]' (or matplotlib), or write the other report formats only.",
        ) from None


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def kld_histogram_svg(report: EvalReport) -> str:
    fig = _figure(10, 3.4)
    ax = fig.add_subplot()
    edges = np.logspace(-6, 1, 36)
    for sl in report.slices:
        kld = np.clip(sl.stats.kld, edges[0], edges[-1])
        if kld.size:  # each slice as a share of its own positions
            ax.hist(kld, bins=edges, histtype="step", weights=np.full(kld.size, 1 / kld.size), label=sl.name)
    ax.set_xscale("log")
    ax.set_xlabel("KL divergence per position (nats; values below 1e-6 in the first bin)")
    ax.set_ylabel("share of the slice's positions")
    threshold = dict(report.gates_for("all")).get("max_mean_kld")
    ax.axvline(report.overall.mean_kld, color="k", linestyle="--", label="mean (all)")
    if threshold is not None:
        ax.axvline(threshold, color=FAIL, label="max_mean_kld gate")
    ax.legend(fontsize=8)
    return _svg(fig)


def gates_svg(report: EvalReport) -> str:
    """One panel per gate: a bar per scope it is checked on, colored by verdict, its threshold across it."""
    by_gate: dict[str, list[GateResult]] = {}
    for g in report.gates:
        by_gate.setdefault(g.gate, []).append(g)
    rows = -(-len(by_gate) // GATES_PER_ROW)
    fig = _figure(10, 2.6 * max(rows, 1))
    for i, (gate, results) in enumerate(by_gate.items()):
        ax = fig.add_subplot(max(rows, 1), GATES_PER_ROW, i + 1)
        measured = [g for g in results if g.value is not None and np.isfinite(g.value)]
        failed = sum(g.status == "fail" for g in results)
        verdict = f"{failed} failed" if failed else "passed" if measured else "not measured"
        ax.set_title(
            f"{gate} ({verdict})", fontsize=9, color=FAIL if failed else PASS if measured else "#777"
        )
        x = np.arange(len(measured))
        values = [float(g.value) for g in measured if g.value is not None]
        ax.bar(x, values, color=[FAIL if g.status == "fail" else PASS for g in measured], width=0.6)
        for j, g in enumerate(measured):
            ax.hlines(g.threshold, j - 0.42, j + 0.42, color="k", linewidth=1.5)
            ax.annotate(fmt(values[j]), (j, values[j]), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [g.scope for g in measured], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        if not measured:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", color="#777", transform=ax.transAxes)
            ax.set_yticks([])
        top = max([*values, *(g.threshold for g in measured)], default=1.0)
        ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)
    fig.tight_layout()
    return _svg(fig)


def scatter_svg(report: EvalReport) -> str:
    fig = _figure(4.6, 4.4)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    total = sum(s.stats.kld.size for s in report.slices)
    for s in report.slices:
        n = s.stats.kld.size
        keep = max(1, int(MAX_SCATTER * n / max(total, 1)))
        idx = rng.choice(n, size=min(n, keep), replace=False) if n else np.arange(0)
        ax.scatter(
            s.stats.base_top_p[idx], s.stats.cand_p[idx], s=4, alpha=0.5, label=s.name, rasterized=True
        )
    ax.plot([0, 1], [0, 1], color="k", linewidth=0.8)
    ax.set_xlabel("baseline: probability of its top token")
    ax.set_ylabel("candidate: probability of that token")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, markerscale=3)
    return _svg(fig)


def _figure_html(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="n"' if i >= numeric_from else ""
            cells.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def to_html(report: EvalReport) -> str:
    require_matplotlib()
    e = html.escape
    b, c = report.baseline, report.candidate
    verdict = "PASS" if report.passed else f"FAIL: {len(report.failures)} of {len(report.gates)} gates"
    order = {"fail": 0, "pass": 1, "skipped": 2}
    gate_rows = [
        [
            f'<span class="{g.status}">{g.status.upper()}</span>',
            f"<code>{e(g.name)}</code>",
            "-" if g.value is None else fmt(g.value),
            fmt(g.threshold),
            e(g.describe()),
        ]
        for g in sorted(report.gates, key=lambda g: order[g.status])
    ]
    slice_rows = [
        [
            e(name),
            str(d.tokens),
            f"{d.mean_kld:.4f}",
            f"{d.median_kld:.4f}",
            f"{d.p90_kld:.4f}",
            f"{d.p99_kld:.4f}",
            f"{d.max_kld:.3f}",
            f"{100 * d.top1:.1f}%",
            f"{d.top_p_rms:.4f}",
            f"{d.ppl_baseline:.3f}",
            f"{d.ppl_candidate:.3f}",
            f"{d.ppl_ratio:.4f}",
        ]
        for name, d in [(s.name, s.summary) for s in report.slices] + [("all", report.overall)]
    ]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>edgekit eval: {e(c.name)} vs {e(b.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>edgekit eval: <span class={'pass' if report.passed else 'fail'}>{e(verdict)}</span></h1>",
        f"<p>baseline <code>{e(b.name)}</code> ({e(b.format)}, {b.size_bytes / 1e6:,.1f} MB, sha256 "
        f"<code>{b.sha256[:16]}</code>)<br>candidate <code>{e(c.name)}</code> ({e(c.format)}, "
        f"{c.size_bytes / 1e6:,.1f} MB, sha256 <code>{c.sha256[:16]}</code>)<br>"
        f"suite <code>{e(str(report.suite_path or '(in code)'))}</code>, "
        f"{report.overall.tokens} scored tokens, "
        f"{report.timings.get('total', 0.0):.1f} s, {e(report.created_at)}</p>",
        "<h2>Gates</h2>",
        _table(["status", "gate", "value", "threshold", "verdict"], gate_rows, numeric_from=2),
        "<h2>Drift by slice</h2>",
        _table(
            [
                "slice",
                "tokens",
                "mean KLD",
                "median",
                "p90",
                "p99",
                "max",
                "top-1",
                "top-p RMS",
                "ppl base",
                "ppl cand",
                "ratio",
            ],
            slice_rows,
        ),
        _figure_html(
            gates_svg(report),
            "Each gate on each scope it checks: red failed, green passed; the black line is the threshold.",
        ),
        _figure_html(
            kld_histogram_svg(report),
            "Per-position KL divergence by slice, as a share of each slice's positions.",
        ),
        _figure_html(
            scatter_svg(report),
            "Each dot is a position: points below the diagonal lost confidence in the baseline's choice.",
        ),
    ]
    if report.tasks is not None:
        tb, tc = report.tasks
        rows = []
        for label, x, y in (
            ("JSON-schema validity", tb.json_validity, tc.json_validity),
            ("refusal rate, should refuse", tb.refusal_rate_refuse, tc.refusal_rate_refuse),
            ("refusal rate, should comply", tb.refusal_rate_comply, tc.refusal_rate_comply),
            ("exact match", tb.exact_match, tc.exact_match),
        ):
            pct = ["-" if v is None else f"{100 * v:.0f}%" for v in (x, y)]
            delta = "-" if x is None or y is None else f"{100 * (y - x):+.0f} pts"
            rows.append([e(label), *pct, delta])
        parts += ["<h2>Tasks</h2>", _table(["metric", "baseline", "candidate", "delta"], rows)]
    sb, sc = report.speed

    def num(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    parts += [
        "<h2>Speed and size</h2>",
        _table(
            ["", "baseline", "candidate"],
            [
                ["generation tok/s", num(sb.gen_tok_s, ".1f"), num(sc.gen_tok_s, ".1f")],
                ["time to first token (ms)", num(sb.ttft_ms, ".1f"), num(sc.ttft_ms, ".1f")],
                ["scoring tok/s", num(sb.scoring_tok_s, ".1f"), num(sc.scoring_tok_s, ".1f")],
                ["file size (MB)", f"{sb.size_bytes / 1e6:,.1f}", f"{sc.size_bytes / 1e6:,.1f}"],
            ],
        ),
        "</body></html>\n",
    ]
    return "\n".join(parts)
