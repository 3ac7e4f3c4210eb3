"""Planning a recipe: its steps, each with inputs, an output path and a cache key known before anything
runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgekit.compress.hf import DEQUANTIZE, bert_safetensors, is_encoder
from edgekit.compress.passes.gguf_quantize import is_quantized
from edgekit.compress.passes.onnx_quantize import GRAPH_LAYOUT
from edgekit.compress.provenance import tool_versions
from edgekit.compress.recipe import Recipe, Target, load_recipe
from edgekit.compress.step import Step, cache_path, step_key
from edgekit.config import Settings
from edgekit.errors import RecipeError, UnknownModelError
from edgekit.models.resolve import fetch, locate
from edgekit.models.verify import remembered_sha256


@dataclass(frozen=True)
class SourceRef:
    """The recipe's source as the plan sees it, without downloading it. ``path`` is set when the caller
    has resolved it already (``quantize``); a GGUF source counts as ``quantized`` unless its header was
    read and says otherwise."""

    spec: str  # what the recipe names: lock name, path or hub id
    format: Literal["gguf", "hf", "onnx"]
    sha256: str
    path: Path | None = None
    quantized: bool = True
    encoder: bool = False  # a BERT-like encoder folder: ONNX targets only, built by the encoder passes


@dataclass(frozen=True)
class Plan:
    recipe: Recipe
    source: SourceRef
    steps: tuple[Step, ...]
    file_hashes: Mapping[str, str] = field(default_factory=dict)  # "file:PATH" -> sha256
    warnings: tuple[str, ...] = ()  # e.g. calibration text that overlaps the evaluation text

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def plan(
    recipe: Recipe | Path | str, *, settings: Settings | None = None, source: SourceRef | None = None
) -> Plan:
    """The steps ``recipe`` takes, in order, with their cache keys. Reads hashes; builds nothing.
    ``source``: the recipe's source resolved already (else it is looked up from ``recipe.source``)."""
    settings = settings or Settings.from_env()
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    source = source or _source_ref(recipe, settings)
    builder = _Builder(recipe, source, settings)
    return builder.build()


def _source_ref(recipe: Recipe, settings: Settings) -> SourceRef:
    spec = recipe.source
    path = Path(spec)
    if path.is_absolute():
        art = fetch(locate(path, settings=settings), settings=settings)
        fmt: Literal["gguf", "hf", "onnx"] = (
            "onnx" if art.format == "onnx" else "gguf" if art.format == "gguf" else "hf"
        )
        quantized = fmt == "gguf" and is_quantized(art.path)
        return SourceRef(
            spec, fmt, art.sha256, quantized=quantized, encoder=fmt == "hf" and is_encoder(art.path)
        )
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
        self.tools = tool_versions()

    def build(self) -> Plan:
        r, src = self.recipe, self.source
        gguf_targets = [t for t in r.targets if t.format == "gguf"]
        onnx_targets = [t for t in r.targets if t.format == "onnx"]
        if src.format == "onnx" or src.encoder:
            self.onnx_only(gguf_targets)
        if src.encoder:
            self.encoders(onnx_targets)
            return Plan(r, src, tuple(self.steps), self.hashes, self.overlap(self.evals("")))
        hf: str | None = "source" if src.format == "hf" else None
        if src.format == "gguf" and (r.distill is not None or onnx_targets):
            hf = self.add("dequantize", "dequantize", {"model": "source"}, DEQUANTIZE, "hf", folder=True)
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
            self.onnx(onnx_targets, hf)
        suite = self.evals(base_gguf)
        return Plan(r, src, tuple(self.steps), self.hashes, self.overlap(suite))

    def onnx_only(self, gguf_targets: list[Target]) -> None:
        r, src = self.recipe, self.source
        what = "an ONNX model" if src.format == "onnx" else "an encoder"
        if gguf_targets or r.distill is not None:
            raise RecipeError(
                f"{r.path}: source {src.spec!r} is {what}; it takes ONNX targets only",
                "Drop the GGUF targets and [distill], or name the model it was exported from.",
            )

    def onnx(self, targets: list[Target], hf: str | None) -> None:
        """The float export (a target itself when one asks for fp32) and the quantized ONNX targets."""
        cal = self.recipe.calibration
        float_target = next((t for t in targets if t.type == "fp32"), None)
        if self.source.format == "onnx":
            if float_target is not None:
                raise RecipeError(
                    f"{self.recipe.path}: source {self.source.spec!r} is an ONNX export already",
                    "Pick a quantized type, or use the export as it is.",
                )
            export = "source"
        else:
            assert hf is not None
            if float_target is not None:
                t = float_target
                export = self.add(
                    f"target:{t.name}", "export", {"model": hf}, {}, out=t.out, folder=True, target=t
                )
            else:
                export = self.add("export", "export", {"model": hf}, {}, "onnx", folder=True)
        for t in targets:
            if t is float_target:
                continue
            if t.type == "int8":
                raise RecipeError(
                    f"{self.recipe.path}: target {t.name!r}: int8 is an encoder's type",
                    "Use int8-dynamic or int8-static for a causal LM.",
                )
            inputs = {"model": export}
            if t.calibrate and cal is not None and cal.data is not None:
                inputs["calibration"] = self.file(cal.data)
            config = {**t.settings(), "layout": GRAPH_LAYOUT}
            self.add(f"target:{t.name}", "onnx", inputs, config, out=t.out, folder=True, target=t)

    def encoders(self, targets: list[Target]) -> None:
        """An encoder's ONNX targets straight from its folder: the torch-free build for int8 of a BERT
        folder with safetensors, optimum-onnx's export otherwise."""
        spec = Path(self.source.spec)
        path = self.source.path or (spec if spec.is_absolute() else None)
        for t in targets:
            if t.type not in ("fp32", "int8"):
                raise RecipeError(
                    f"{self.recipe.path}: target {t.name!r}: {self.source.spec} is an encoder; ONNX type "
                    f"{t.type!r} applies to causal LMs only",
                    "Use fp32 or int8 for encoders.",
                )
            torch_free = t.type == "int8" and path is not None and bert_safetensors(path)
            kind = "bert-encoder" if torch_free else "encoder"
            self.add(
                f"target:{t.name}", kind, {"model": "source"}, t.settings(), out=t.out, folder=True, target=t
            )

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
        if self.source.quantized and not self.recipe.allow_requantize:
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
        key = step_key(kind, config, {r: self.keys[i] for r, i in inputs.items()}, self.tools)
        if out is None:
            out = cache_path(self.settings, kind, key, name)
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
