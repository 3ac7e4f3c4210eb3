"""JUnit XML for CI test reporters: one test case per gate, failures carry what failed and by how much.

Test cases are named by gate (``drift.all.max_mean_kld``, ``drift.code.min_top1``,
``tasks.max_refusal_drift``, ``speed.min_speed_ratio``); skipped gates are ``<skipped/>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from edgekit.evaluate.report import EvalReport


def to_junit(report: EvalReport) -> str:
    gates = report.gates
    failed = sum(1 for g in gates if g.status == "fail")
    skipped = sum(1 for g in gates if g.status == "skipped")
    total_s = f"{report.timings.get('total', 0.0):.3f}"
    root = ET.Element("testsuites", name="edgekit eval", tests=str(len(gates)), failures=str(failed))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"edgekit eval: {report.candidate.name} vs {report.baseline.name}",
        tests=str(len(gates)),
        failures=str(failed),
        errors="0",
        skipped=str(skipped),
        time=total_s,
        timestamp=report.created_at,
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("baseline", report.baseline.name),
        ("baseline_sha256", report.baseline.sha256),
        ("candidate", report.candidate.name),
        ("candidate_sha256", report.candidate.sha256),
        ("suite", str(report.suite_path or "")),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    for g in gates:
        classname, _, name = g.name.rpartition(".")
        case = ET.SubElement(suite, "testcase", classname=f"edgekit.eval.{classname}", name=name, time="0")
        if g.status == "fail":
            failure = ET.SubElement(case, "failure", message=g.describe(), type="GateFailed")
            failure.text = g.describe()
        elif g.status == "skipped":
            ET.SubElement(case, "skipped", message=g.describe())
        else:
            ET.SubElement(case, "system-out").text = g.describe()
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
