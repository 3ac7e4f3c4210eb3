"""Running a plan: every step that is not up to date, the targets pinned in models.lock, then the eval
gate."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from edgekit.compress.pipeline.cache import StepResult
from edgekit.compress.pipeline.plan import Plan, plan
from edgekit.compress.provenance import Provenance, record
from edgekit.compress.recipe import Recipe
from edgekit.compress.step import Pass, Records, Step, execute
from edgekit.config import Settings
from edgekit.errors import CheckFailedError, RecipeError
from edgekit.files import ProgressFn, no_progress

PASSES: dict[str, str] = {
    "dequantize": "edgekit.compress.hf:Dequantize",
    "distill": "edgekit.compress.distill:Distill",
    "convert": "edgekit.compress.passes.gguf_convert:Convert",
    "imatrix": "edgekit.compress.passes.imatrix:ComputeImatrix",
    "gguf": "edgekit.compress.passes.gguf_quantize:QuantizeGGUF",
    "export": "edgekit.compress.passes.onnx_export:ExportONNX",
    "onnx": "edgekit.compress.passes.onnx_quantize:QuantizeONNX",
    "encoder": "edgekit.compress.passes.onnx_encoder:ExportEncoder",
    "bert-encoder": "edgekit.compress.passes.bert_encoder:BuildBertEncoder",
    "eval": "edgekit.compress.passes.eval_gate:Evaluate",
}
"""Step kind -> "module:Class" of the pass that runs it."""


@dataclass(frozen=True)
class GateOutcome:
    """The eval gate's verdict for one target: gates as in the eval report's JSON (name, value, ...)."""

    target: str
    baseline: str
    passed: bool
    gates: tuple[Mapping[str, Any], ...]
    report: Path

    @property
    def failures(self) -> list[Mapping[str, Any]]:
        return [g for g in self.gates if g.get("status") == "fail"]


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    steps: tuple[StepResult, ...]
    gates: tuple[GateOutcome, ...] = ()

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": str(self.plan.recipe.path),
            "recipe_sha256": self.plan.recipe.sha256,
            "source": {"spec": self.plan.source.spec, "sha256": self.plan.source.sha256},
            "steps": [s.to_dict() for s in self.steps],
            "targets": {
                t.name: {"path": str(t.out), "format": t.format, "type": t.type}
                for t in self.plan.recipe.targets
            },
            "eval": [
                {"target": g.target, "baseline": g.baseline, "passed": g.passed, "gates": list(g.gates)}
                for g in self.gates
            ],
            "passed": self.passed,
        }


# --- run ---------------------------------------------------------------------------------------------


def run(
    p: Plan,
    *,
    force: bool = False,
    settings: Settings | None = None,
    passes: Mapping[str, Pass] | None = None,
    progress: ProgressFn = no_progress,
    on_step: Callable[[StepResult, int, int], None] | None = None,
) -> RunResult:
    """Build every step that is not up to date, record the targets in models.lock, run the eval gate.

    ``on_step(result, index, total)`` is called before each step (status "run" or "cached") and after
    each step that ran (status "ran"), for the CLI's per-step lines.
    """
    settings = settings or Settings.from_env()
    records = Records(settings)
    outputs: dict[str, Path] = {}
    shas: dict[str, str] = dict(p.file_hashes)
    results: list[StepResult] = []
    gates: list[GateOutcome] = []
    built: set[str] = set()
    source_path: Path | None = None
    total = len(p.steps)
    for index, step in enumerate(p.steps, 1):
        prov: Provenance | None = None
        fresh, sha, why = (False, "", "--force") if force else records.check(step)
        upstream = next((i for i in step.inputs.values() if i in built), None)
        if fresh and upstream is None:
            result = StepResult(step, "cached", sha)
            if on_step:
                on_step(result, index, total)
        else:
            if on_step:
                on_step(StepResult(step, "run", reason=why or f"{upstream} ran again"), index, total)
            if source_path is None and "source" in step.inputs.values():
                source_path = _source_path(p, settings, progress)
            inputs = {role: _input_path(ref, p, outputs, source_path) for role, ref in step.inputs.items()}
            started = time.perf_counter()
            prov = _provenance(step, p, shas) if step.target is not None else None
            sha = _execute(step, inputs, p, settings, passes, progress, prov)
            records.write(step, sha)
            built.add(step.id)
            result = StepResult(
                step, "ran", sha, time.perf_counter() - started, why or f"{upstream} ran again"
            )
            if on_step:
                on_step(result, index, total)
        outputs[step.id] = step.out
        shas[step.id] = sha
        results.append(result)
        if step.target is not None:
            _pin(step, p, sha, prov if result.status == "ran" else None, shas, settings)
        if step.kind == "eval":
            gates.append(_outcome(step, p))
    return RunResult(p, tuple(results), tuple(gates))


def run_recipe(
    recipe: Recipe | Path | str,
    *,
    force: bool = False,
    check: bool = True,
    settings: Settings | None = None,
    progress: ProgressFn = no_progress,
    passes: Mapping[str, Pass] | None = None,
) -> RunResult:
    """Plan and run ``recipe``. With ``check``, a failed eval gate raises CheckFailedError (exit 1).
    ``passes`` replaces the registered pass of some step kinds (as ``run``'s does)."""
    settings = settings or Settings.from_env()
    p = plan(recipe, settings=settings)
    result = run(p, force=force, settings=settings, progress=progress, passes=passes)
    if check and not result.passed:
        raise gate_error(result)
    return result


def gate_error(result: RunResult) -> CheckFailedError:
    failed = [(g.target, f) for g in result.gates for f in g.failures]
    shown = "; ".join(
        f"{t}: {f['name']} {_num(f.get('value'))} (limit {_num(f.get('threshold'))})" for t, f in failed[:3]
    )
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    return CheckFailedError(
        f"eval gate failed: {shown}{more}",
        "The targets were built and pinned; see each target's eval report, or loosen the suite's gates.",
    )


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _source_path(p: Plan, settings: Settings, progress: ProgressFn) -> Path:
    if p.source.path is not None:  # resolved by the caller
        return p.source.path
    from edgekit.compress.source import resolve

    found = resolve(p.source.spec, settings=settings, progress=progress)
    if found.sha256 != p.source.sha256:
        raise RecipeError(
            f"source {p.source.spec!r} changed while planning (sha256 {found.sha256[:12]}, planned "
            f"{p.source.sha256[:12]})",
            "Run the recipe again.",
        )
    return found.path


def _input_path(ref: str, p: Plan, outputs: Mapping[str, Path], source: Path | None) -> Path:
    if ref == "source":
        assert source is not None
        return source
    if ref.startswith("file:"):
        return Path(ref[len("file:") :])
    if ref.startswith("lock:"):
        from edgekit.models.store import ModelStore

        return ModelStore().ensure(ref[len("lock:") :])
    return outputs[ref]


def _execute(
    step: Step,
    inputs: Mapping[str, Path],
    p: Plan,
    settings: Settings,
    passes: Mapping[str, Pass] | None,
    progress: ProgressFn,
    prov: Provenance | None,
) -> str:
    impl = (passes or {}).get(step.kind) or load_pass(step.kind)
    return execute(step, impl, inputs, settings, progress, prov)


def load_pass(kind: str) -> Pass:
    """The pass registered for ``kind`` in ``PASSES``, imported on first use."""
    module, _, name = PASSES[kind].partition(":")
    cls = getattr(import_module(module), name)
    instance: Pass = cls()
    return instance


def _provenance(step: Step, p: Plan, shas: Mapping[str, str]) -> Provenance:
    """What the target's lock entry and metadata say; ``shas`` holds the sha256 of files and built steps.
    ``settings`` holds the options that shaped the bytes beyond the type: tensor overrides, the block
    size, how the source became the model that was quantized, and the recipe's name."""
    t, r = step.target, p.recipe
    assert t is not None
    settings: dict[str, Any] = t.overrides.to_dict()
    if t.block_size is not None:
        settings["block_size"] = t.block_size
    base = step.inputs.get("model")
    if base == "convert":
        settings["converted"] = f"hf -> gguf {r.outtype}"
    elif base == "source" and p.source.quantized and r.allow_requantize:
        settings["allow_requantize"] = True
    if r.sha256:  # a recipe file (quantize's recipe lives in memory)
        settings["recipe"] = r.name
    if step.kind == "bert-encoder":
        settings["builder"] = "bert-encoder"
    if r.distill is not None:
        settings["distilled"] = f"drop_layers={r.distill.get('drop_layers')}"
    cal = r.calibration
    cal_sha = ""
    if t.calibrate and cal is not None and cal.data is not None:
        cal_sha = shas.get(f"file:{cal.data}", "")
    return Provenance(
        source=p.source.spec,
        source_sha256=p.source.sha256,
        step="export" if t.type == "fp32" else r.made_by,
        quant_type=t.type,
        recipe_sha256=r.sha256,
        calibration_sha256=cal_sha,
        imatrix_sha256=shas.get(step.inputs.get("imatrix", ""), ""),
        settings=settings,
    )


def _pin(
    step: Step, p: Plan, sha: str, prov: Provenance | None, shas: Mapping[str, str], settings: Settings
) -> None:
    """Give the target its models.lock entry, unless the lock already pins these bytes there."""
    from edgekit.compress.source import inherited_license
    from edgekit.models.lock import Lockfile

    t = step.target
    assert t is not None
    lock = Lockfile.load(settings.lock_path)
    entry = lock.models.get(t.name)
    pinned = entry is not None and entry.sha256 == sha and (entry.provenance or {}).get("recipe_sha256")
    if pinned == p.recipe.sha256:
        return
    record(
        settings.lock_path,
        step.out,
        prov or _provenance(step, p, shas),
        name=t.name,
        role=t.role,
        license=t.license if t.license != "unknown" else inherited_license(p.source.spec, settings),
        description=t.description or f"{p.source.spec} to {t.format} {t.type} by recipe {p.recipe.name}",
    )


def _outcome(step: Step, p: Plan) -> GateOutcome:
    data = json.loads(step.out.read_text(encoding="utf-8"))
    name = step.inputs["candidate"].removeprefix("target:")
    base = step.inputs["baseline"]
    return GateOutcome(
        target=name,
        baseline=p.source.spec if base == "source" else base.split(":", 1)[-1],
        passed=bool(data.get("passed")),
        gates=tuple(data.get("gates", [])),
        report=step.out,
    )
