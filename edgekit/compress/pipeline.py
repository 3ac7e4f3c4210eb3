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

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any, Literal

from edgekit.compress.passes.gguf_convert import TOOLS as CONVERT_TOOLS
from edgekit.compress.provenance import Provenance, record, tool_versions
from edgekit.compress.recipe import Recipe, Target, load_recipe
from edgekit.compress.step import Pass, Step, StepContext
from edgekit.config import Settings
from edgekit.errors import CheckFailedError, RecipeError, UnknownModelError
from edgekit.files import ProgressFn, atomic_replace, content_sha256, no_progress
from edgekit.models.resolve import fetch, locate
from edgekit.models.verify import VerifyMemo, remembered_sha256

Status = Literal["run", "cached", "ran"]
PASSES: dict[str, str] = {
    "dequantize": "edgekit.compress.hf:Dequantize",
    "distill": "edgekit.compress.distill:Distill",
    "convert": "edgekit.compress.passes.gguf_convert:Convert",
    "imatrix": "edgekit.compress.passes.imatrix:ComputeImatrix",
    "gguf": "edgekit.compress.passes.gguf_quantize:QuantizeGGUF",
    "export": "edgekit.compress.passes.onnx_export:ExportONNX",
    "onnx": "edgekit.compress.passes.onnx_quantize:QuantizeONNX",
    "eval": "edgekit.compress.passes.eval_gate:Evaluate",
}
"""Step kind -> "module:Class" of the pass that runs it."""

# Which tools shape each kind's bytes (their versions are part of the cache key).
_TOOLS: dict[str, tuple[str, ...]] = {
    "dequantize": ("torch", "transformers"),
    "distill": ("torch", "transformers"),
    "convert": CONVERT_TOOLS,
    "imatrix": ("llama-cpp-python",),
    "gguf": ("llama-cpp-python",),
    "export": ("optimum-onnx", "onnx", "torch", "transformers"),
    "onnx": ("onnx", "onnxruntime"),
    "eval": ("llama-cpp-python", "onnxruntime"),
}


@dataclass(frozen=True)
class SourceRef:
    """The recipe's source as the plan sees it, without downloading it."""

    spec: str  # what the recipe names: lock name, path or hub id
    format: Literal["gguf", "hf", "onnx"]
    sha256: str


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    source: SourceRef
    steps: tuple[Step, ...]
    file_hashes: Mapping[str, str] = field(default_factory=dict)  # "file:PATH" -> sha256
    warnings: tuple[str, ...] = ()  # e.g. calibration text that overlaps the evaluation text

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


@dataclass(frozen=True)
class StepResult:
    step: Step
    status: Status  # "run": planned and due (dry run); "cached": up to date, skipped; "ran": built now
    sha256: str = ""
    seconds: float = 0.0
    reason: str = ""  # why a step runs: "no record", "output changed", "--force", ...

    def to_dict(self) -> dict[str, Any]:
        d = {**self.step.to_dict(), "status": self.status, "reason": self.reason}
        if self.sha256:
            d["sha256"] = self.sha256
        if self.status == "ran":
            d["seconds"] = round(self.seconds, 2)
        return d


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


# --- plan ------------------------------------------------------------------------------------------


def plan(recipe: Recipe | Path | str, *, settings: Settings | None = None) -> Plan:
    """The steps ``recipe`` takes, in order, with their cache keys. Reads hashes; builds nothing."""
    settings = settings or Settings.from_env()
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    source = _source_ref(recipe, settings)
    builder = _Builder(recipe, source, settings)
    return builder.build()


def _source_ref(recipe: Recipe, settings: Settings) -> SourceRef:
    spec = recipe.source
    path = Path(spec)
    if path.is_absolute():
        art = fetch(locate(path, settings=settings), settings=settings)
        fmt: Literal["gguf", "hf", "onnx"] = art.format if art.format in ("gguf", "onnx") else "hf"  # type: ignore[assignment]
        return SourceRef(spec, fmt, art.sha256)
    if "@" in spec:  # org/name@<commit>: the commit pins the bytes
        return SourceRef(spec, "hf", hashlib.sha256(f"hub:{spec}".encode()).hexdigest())
    from edgekit.models.lock import Lockfile

    lock = Lockfile.load(settings.lock_path)
    if spec not in lock.models:
        raise UnknownModelError(
            f"{recipe.path}: source {spec!r} is not in models.lock ({settings.lock_path})",
            "Name an entry from 'edgekit models list', or a model path relative to the recipe.",
        )
    entry = lock.get(spec)
    if entry.format == "data":
        raise RecipeError(
            f"{recipe.path}: source {spec!r} is a build input (format data), not a model to compress",
            "Name a GGUF, ONNX or Hugging Face entry from 'edgekit models list'.",
        )
    return SourceRef(spec, entry.format, entry.sha256)


class _Builder:
    def __init__(self, recipe: Recipe, source: SourceRef, settings: Settings) -> None:
        self.recipe, self.source, self.settings = recipe, source, settings
        self.steps: list[Step] = []
        self.keys: dict[str, str] = {"source": source.sha256}
        self.work = settings.cache_dir / "compress"
        self.tools = tool_versions()

    def build(self) -> Plan:
        r, src = self.recipe, self.source
        if src.format == "onnx":
            raise RecipeError(
                f"{r.path}: source {src.spec!r} is an ONNX model; a recipe starts from GGUF or Hugging Face",
                "Name the model it was exported from.",
            )
        gguf_targets = [t for t in r.targets if t.format == "gguf"]
        onnx_targets = [t for t in r.targets if t.format == "onnx"]
        hf: str | None = "source" if src.format == "hf" else None
        if hf is None and (r.distill is not None or onnx_targets):
            hf = self.add("dequantize", "dequantize", {"model": "source"}, {}, "hf", folder=True)
        if r.distill is not None:
            cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in r.distill.items()}
            inputs = {"teacher": hf or "source"}
            for key in ("data", "prompts"):
                if key in cfg:
                    inputs[key] = self.file(Path(cfg.pop(key)))
            hf = self.add("distill", "distill", inputs, cfg, "student", folder=True)
        base_gguf = self.gguf_base(gguf_targets, hf)
        imatrix = self.importance(gguf_targets, base_gguf)
        for t in gguf_targets:
            inputs = {"model": base_gguf}
            if t.calibrate and imatrix:
                inputs["imatrix"] = imatrix
            cfg = {**t.settings(), "allow_requantize": base_gguf == "source"}
            self.add(f"target:{t.name}", "gguf", inputs, cfg, out=t.out, target=t)
        if onnx_targets:
            assert hf is not None
            export = self.add("export", "export", {"model": hf}, {}, "onnx", folder=True)
            for t in onnx_targets:
                inputs = {"model": export}
                cal = r.calibration
                if t.calibrate and cal is not None and cal.data is not None:
                    inputs["calibration"] = self.file(cal.data)
                self.add(f"target:{t.name}", "onnx", inputs, t.settings(), out=t.out, folder=True, target=t)
        suite = self.evals(base_gguf)
        return Plan(r, src, tuple(self.steps), self.hashes, self.overlap(suite))

    def overlap(self, suite: Any) -> tuple[str, ...]:
        """Calibration text must stay apart from the text the gate scores; say so when it does not."""
        cal = self.recipe.calibration
        if cal is None or cal.data is None:
            return ()
        from edgekit.compress.calibration import check_overlap, load_calibration

        data = load_calibration(cal.data)  # empty or too-short text fails here, before any step runs
        texts = [s.text for s in suite.slices] if suite is not None else None
        found = check_overlap(data, texts)
        return (found.warning,) if found.warning else ()

    def gguf_base(self, targets: list[Target], hf: str | None) -> str:
        if not targets:
            return ""
        if hf is not None:
            return self.add(
                "convert", "convert", {"model": hf}, {"outtype": self.recipe.outtype}, "model.gguf"
            )
        if not self.recipe.allow_requantize:
            raise RecipeError(
                f"{self.recipe.path}: source {self.source.spec!r} is a GGUF file; quantizing it again "
                "compounds the rounding error",
                "Start from the Hugging Face folder, or set allow_requantize = true in [source].",
            )
        return "source"

    def importance(self, targets: list[Target], base: str) -> str:
        cal = self.recipe.calibration
        if cal is None or not any(t.calibrate for t in targets):
            return ""
        if cal.imatrix is not None:
            return self.file(cal.imatrix)
        assert cal.data is not None
        cfg: dict[str, Any] = {"chunk_tokens": cal.chunk_tokens}
        if cal.max_chunks is not None:
            cfg["max_chunks"] = cal.max_chunks
        return self.add(
            "imatrix", "imatrix", {"model": base, "calibration": self.file(cal.data)}, cfg, "imatrix.gguf"
        )

    def evals(self, base_gguf: str) -> Any:
        gate = self.recipe.eval
        if gate is None:
            return None
        from edgekit.evaluate.suite import load_suite

        suite = load_suite(gate.suite)  # a broken suite fails the plan, not the run after the builds
        suite_key = _suite_key(suite)
        baseline = gate.baseline
        if baseline == "source":
            baseline = self.baseline_for_source(base_gguf)
        elif baseline == "unquantized":
            pass  # per target, below
        elif not Path(baseline).exists() and "/" not in baseline:
            from edgekit.models.lock import Lockfile

            lock = Lockfile.load(self.settings.lock_path)
            if baseline not in lock.models:
                raise RecipeError(
                    f"{self.recipe.path}: eval baseline {baseline!r} is not a file or a models.lock name",
                    'Use "source", "unquantized", a lock name, or a GGUF/ONNX path next to the recipe.',
                )
            self.keys[f"lock:{baseline}"] = lock.get(baseline).sha256
            baseline = f"lock:{baseline}"
        else:
            baseline = self.file(Path(baseline))
        for name in gate.targets:
            cfg = {"suite": str(gate.suite), "suite_sha256": suite_key}
            target = f"target:{name}"
            base = baseline
            if baseline == "unquantized":  # the same weights before quantizing, in the target's format
                base = next(s for s in self.steps if s.id == target).inputs["model"]
            self.add(
                f"eval:{name}",
                "eval",
                {"baseline": base, "candidate": target},
                cfg,
                "report.json",
            )
        return suite

    def baseline_for_source(self, base_gguf: str) -> str:
        if self.source.format == "gguf":
            return "source"
        # The eval scores GGUF and ONNX models: a Hugging Face source's unquantized conversion stands for it.
        if self.recipe.distill is None and base_gguf == "convert":
            return "convert"
        if self.recipe.distill is None and any(s.id == "export" for s in self.steps):
            return "export"
        raise RecipeError(
            f'{self.recipe.path}: eval baseline "source" is a Hugging Face folder here, which the eval '
            "cannot score",
            "Set [eval] baseline to a models.lock name or a GGUF/ONNX path of the reference model.",
        )

    def file(self, path: Path) -> str:
        ref = f"file:{path}"
        if ref not in self.keys:
            self.keys[ref] = remembered_sha256(path, self.settings.cache_dir)
        return ref

    def add(
        self,
        step_id: str,
        kind: str,
        inputs: Mapping[str, str],
        config: Mapping[str, Any],
        name: str = "",
        *,
        out: Path | None = None,
        folder: bool = False,
        target: Target | None = None,
    ) -> str:
        tools = {t: v for t, v in self.tools.items() if t in _TOOLS[kind] or t == "edgekit"}
        blob = {
            "kind": kind,
            "config": config,
            "inputs": {r: self.keys[i] for r, i in inputs.items()},
            "tools": tools,
        }
        key = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()
        if out is None:
            out = self.work / kind / key[:16] / name
        self.steps.append(Step(step_id, kind, dict(inputs), dict(config), key, out, folder, target))
        self.keys[step_id] = key
        return step_id

    @property
    def hashes(self) -> dict[str, str]:
        return {k: v for k, v in self.keys.items() if k.startswith(("file:", "lock:"))}


def _suite_key(suite: Any) -> str:
    """Content hash of a loaded suite: texts, gates and settings (not the file's path)."""
    h = hashlib.sha256()
    for s in suite.slices:
        h.update(json.dumps([s.name, s.chunk_tokens, dict(s.gates)], sort_keys=True).encode())
        h.update(s.text.encode("utf-8"))
    tasks = suite.tasks
    settings = [
        dict(suite.gates),
        suite.top_k,
        suite.min_tokens,
        suite.task_max_tokens,
        suite.speed_runs,
        suite.speed_max_tokens,
        suite.speed_prompt,
        repr(tasks),
    ]
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


# --- status and records ------------------------------------------------------------------------------


class _Records:
    """``compress/steps/<key>-<path hash>.json``: the sha256 of what a step with that key wrote at that path.

    Keyed by path too, so two recipes building the same bytes at different paths do not evict each other.
    """

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.cache_dir / "compress" / "steps"
        self.memo = VerifyMemo(settings.cache_dir / "compress" / "outputs.json")

    def file(self, step: Step) -> Path:
        where = hashlib.sha256(str(step.out).encode()).hexdigest()[:12]
        return self.folder / f"{step.key}-{where}.json"

    def check(self, step: Step) -> tuple[bool, str, str]:
        """(up to date, sha256 of the output, why not)."""
        try:
            rec = json.loads(self.file(step).read_text())
        except (OSError, ValueError):
            return False, "", "not built with these inputs before"
        if not isinstance(rec, dict) or rec.get("out") != str(step.out):
            return False, "", "not built with these inputs before"
        if not step.out.exists():
            return False, "", "output missing"
        sha = self.memo.lookup(step.out)
        if sha is None:
            sha = content_sha256(step.out)
            self.memo.remember(step.out, sha)
        if sha != rec.get("sha256"):
            return False, "", "output changed since it was built"
        return True, sha, ""

    def write(self, step: Step, sha256: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memo.remember(step.out, sha256)
        data = {
            "id": step.id,
            "kind": step.kind,
            "out": str(step.out),
            "sha256": sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_replace(self.file(step), json.dumps(data, indent=1).encode())


def status(p: Plan, *, force: bool = False, settings: Settings | None = None) -> tuple[StepResult, ...]:
    """What a run would do now: each step "cached" (up to date) or "run", with the reason."""
    records = _Records(settings or Settings.from_env())
    results = []
    stale: set[str] = set()
    for step in p.steps:
        fresh, sha, why = (False, "", "--force") if force else records.check(step)
        upstream = next((i for i in step.inputs.values() if i in stale), None)
        if fresh and upstream is None:
            results.append(StepResult(step, "cached", sha))
        else:
            results.append(StepResult(step, "run", reason=why or f"{upstream} runs again"))
            stale.add(step.id)
    return tuple(results)


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
    records = _Records(settings)
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
) -> RunResult:
    """Plan and run ``recipe``. With ``check``, a failed eval gate raises CheckFailedError (exit 1)."""
    settings = settings or Settings.from_env()
    result = run(plan(recipe, settings=settings), force=force, settings=settings, progress=progress)
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
    from edgekit.files import atomic_output

    impl = (passes or {}).get(step.kind) or load_pass(step.kind)
    with atomic_output(step.out, folder=step.folder) as tmp:
        impl.run(StepContext(step, inputs, tmp, settings, progress, prov))
    return content_sha256(step.out)


def load_pass(kind: str) -> Pass:
    """The pass registered for ``kind`` in ``PASSES``, imported on first use."""
    module, _, name = PASSES[kind].partition(":")
    cls = getattr(import_module(module), name)
    instance: Pass = cls()
    return instance


def _provenance(step: Step, p: Plan, shas: Mapping[str, str]) -> Provenance:
    """What the target's lock entry and metadata say; ``shas`` holds the sha256 of files and built steps."""
    assert step.target is not None
    settings: dict[str, Any] = {**step.target.settings(), "recipe": p.recipe.name}
    if p.recipe.distill is not None:
        settings["distilled"] = f"drop_layers={p.recipe.distill.get('drop_layers')}"
    cal = p.recipe.calibration
    cal_sha = ""
    if step.target.calibrate and cal is not None and cal.data is not None:
        cal_sha = shas.get(f"file:{cal.data}", "")
    imatrix_sha = shas.get(step.inputs.get("imatrix", ""), "")
    return Provenance(
        source=p.source.spec,
        source_sha256=p.source.sha256,
        step="compress",
        quant_type=step.target.type,
        recipe_sha256=p.recipe.sha256,
        calibration_sha256=cal_sha,
        imatrix_sha256=imatrix_sha,
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
