"""Quality-drift evaluation: how far a candidate build of a model moved from its baseline, and gates.

    import edgekit
    report = edgekit.run_eval("smollm2-135m-instruct", "build/model-q4_0.gguf")
    print(report.passed, report.overall.mean_kld, [g.describe() for g in report.failures])

Modules: ``scoring`` (logits per position from a local backend, window by window), ``drift`` (KL
divergence, top-1 agreement, perplexity; exact and cached top-k forms), ``cache`` (baseline statistics
keyed by model and text sha256), ``suite`` (the TOML suite: slices, tasks, gates), ``tasks`` (JSON
validity, refusals, exact match), ``speed``, ``gates``, ``report`` (the report and its JSON schema),
``junit``, ``markdown`` and ``html`` (report writers), ``run`` (``run_eval``).
"""

from edgekit.evaluate.gates import GateResult
from edgekit.evaluate.report import EvalReport
from edgekit.evaluate.run import run_eval
from edgekit.evaluate.suite import Suite, default_suite_path, load_suite

__all__ = ["EvalReport", "GateResult", "Suite", "default_suite_path", "load_suite", "run_eval"]
