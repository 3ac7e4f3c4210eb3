"""Plan and run a recipe: a chain of cached steps from the source to every target, then the eval gate.

``plan(recipe)`` turns a recipe into steps, each with its inputs, its output path and a cache key: the
sha256 of the step's kind and settings, its inputs' keys (the source's sha256, a calibration file's
sha256, an upstream step's key) and the versions of the tools that shape its bytes. Keys are known
before anything runs, so ``--dry-run`` can say which steps would run and which are up to date.

``run(plan)`` walks the steps in order. A step whose key has a record in the edgekit cache
(``compress/steps/``) and whose output still has the recorded sha256 is skipped; anything
else runs its pass, whose output lands through ``atomic_output`` (never half-written under its final
name) and is recorded. A changed input changes the keys of the steps downstream of it only, so only
those run again. Each target gets its models.lock entry with provenance (source, recipe, calibration
and importance-matrix hashes, tool versions). Intermediate outputs (converted GGUF, importance matrix,
distilled student, ONNX export) live in the cache under ``compress/<kind>/<key>``; targets at the paths
the recipe names. Last, the eval steps compare each gated target with the baseline; the verdict is in
the result (``RunResult.passed``), and ``run_recipe(..., check=True)`` raises ``CheckFailedError``.

Steps run through passes looked up by kind (``PASSES``, loaded lazily so heavy dependencies load only
when a recipe needs them); ``run(passes=...)`` swaps them, which is how the pipeline's own logic is tested
without models.
"""

from edgekit.compress.pipeline.cache import StepResult, status
from edgekit.compress.pipeline.plan import Plan, SourceRef, plan
from edgekit.compress.pipeline.run import (
    PASSES,
    GateOutcome,
    RunResult,
    gate_error,
    load_pass,
    run,
    run_recipe,
)
from edgekit.compress.step import Records

__all__ = [
    "PASSES",
    "GateOutcome",
    "Plan",
    "Records",
    "RunResult",
    "SourceRef",
    "StepResult",
    "gate_error",
    "load_pass",
    "plan",
    "run",
    "run_recipe",
    "status",
]
