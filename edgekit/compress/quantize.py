"""``edgekit.quantize``: one call from a source model to a quantized artifact pinned in models.lock.

GGUF path: resolve the source and check the options, then run a one-target recipe, held in memory,
through the pipeline (``compress/pipeline``) as ``edgekit compress`` runs a recipe file: a Hugging Face
folder is converted to an F16 GGUF and its tokenizer checked, an importance matrix is computed from
calibration text or read from a file, llama.cpp's quantizer writes the output with provenance in its
metadata, and the output gets a models.lock entry with the same provenance; every step is cached by its
inputs, settings and tool versions. ONNX path: ``compress/onnx.to_onnx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgekit.compress.hf import dequantized
from edgekit.compress.passes.gguf_quantize import NEEDS_IMATRIX, TensorOverrides, is_quantized, quant_type
from edgekit.compress.pipeline import Plan, SourceRef, plan, run
from edgekit.compress.provenance import Provenance
from edgekit.compress.recipe import Calibration, Recipe, Target
from edgekit.compress.source import Source, output_stem, resolve
from edgekit.config import Settings, writable_lock_path
from edgekit.errors import InputError
from edgekit.files import ProgressFn, no_progress
from edgekit.models.lock import NAME_RE, Lockfile, ModelEntry

Format = Literal["gguf", "onnx"]


@dataclass(frozen=True)
class QuantizeResult:
    """Where the output went, its models.lock entry, its provenance, and what the user should know."""

    path: Path
    entry: ModelEntry
    provenance: Provenance
    warnings: tuple[str, ...] = field(default_factory=tuple)


def quantize(
    src: str | Path,
    to: str,
    *,
    format: Format = "gguf",
    out: str | Path | None = None,
    calibration: str | Path | None = None,
    imatrix: str | Path | None = None,
    overrides: TensorOverrides | None = None,
    allow_requantize: bool = False,
    name: str | None = None,
    lock_path: str | Path | None = None,
    progress: ProgressFn | None = None,
) -> QuantizeResult:
    """Quantize ``src`` (HF folder, ``org/name@commit``, GGUF file or models.lock name) to ``to``.

    The output (default ``./<source>-<TYPE>.gguf``) is written atomically and recorded in ``lock_path``
    (default: the lock edgekit uses, ``EDGEKIT_LOCK`` or ``./models.lock``) as ``name``.
    """
    progress = progress or no_progress
    settings = Settings.from_env()
    if format == "onnx":
        if overrides or imatrix is not None or allow_requantize:
            raise InputError(
                "per-tensor types, an imatrix and allow_requantize are GGUF options",
                "Drop them for format='onnx'.",
            )
        return _onnx(src, to, out, calibration, name, lock_path, settings, progress)
    if format != "gguf":
        raise InputError(f"unknown format {format!r}", "Use format='gguf' or format='onnx'.")
    qtype = quant_type(to)
    overrides = overrides or TensorOverrides()
    if calibration is not None and imatrix is not None:
        raise InputError("calibration and imatrix both given", "Pass one: text to compute from, or a file.")
    if qtype in NEEDS_IMATRIX and calibration is None and imatrix is None:
        raise InputError(
            f"{qtype} needs an importance matrix: llama.cpp's low-bit and IQ types lose too much without one",
            "Pass calibration=DATA (for example recipes/data/calibration) or imatrix=FILE.",
        )
    if name is not None and not NAME_RE.match(name):
        raise InputError(f"bad model name {name!r}", "Use letters, digits, '.', '_' and '-'.")
    source = resolve(src, settings=settings, progress=progress)
    warnings: list[str] = [source.warning] if source.warning else []
    quantized = source.format == "gguf" and is_quantized(source.path)
    if quantized:
        if not allow_requantize:
            raise InputError(
                f"{source.display} is already quantized; quantizing again compounds the rounding error",
                "Quantize from an F16/F32 GGUF or the HF folder, or pass allow_requantize=True.",
            )
        warnings.append(
            f"{source.display} is already quantized: requantizing to {qtype} adds a second rounding "
            "error; quality is lower than quantizing from F16"
        )
    base = output_stem(source.display)
    out_path = (Path(out) if out is not None else Path.cwd() / f"{base}-{qtype}.gguf").resolve()
    if out_path == source.path.resolve():
        raise InputError(f"the output {out_path} is the source file", "Write the output to another path.")
    cal = None
    if calibration is not None or imatrix is not None:
        cal = Calibration(
            data=Path(calibration).resolve() if calibration is not None else None,
            imatrix=Path(imatrix).resolve() if imatrix is not None else None,
        )
    target = Target(
        name=name or f"{base}-{qtype.lower().replace('_', '-')}",
        format="gguf",
        type=qtype,
        out=out_path,
        calibrate=cal is not None,
        overrides=overrides,
        license=source.license,
        description=f"{source.display} quantized to {qtype} by edgekit",
    )
    recipe = Recipe(
        path=Path("quantize"),
        sha256="",  # held in memory: no recipe file to name in the provenance
        source=source.display,
        targets=(target,),
        out_dir=out_path.parent,
        allow_requantize=allow_requantize or not quantized,
        outtype="f32" if qtype == "F32" else "f16",
        calibration=cal,
        made_by="quantize",
    )
    return _build(recipe, source, quantized, lock_path, settings, progress, warnings)


def _build(
    recipe: Recipe,
    source: Source,
    quantized: bool,
    lock_path: str | Path | None,
    settings: Settings,
    progress: ProgressFn,
    warnings: list[str],
) -> QuantizeResult:
    """Run the one-target ``recipe`` through the pipeline for ``source`` (resolved already): its steps
    cached as a recipe's are, its target pinned in ``lock_path``."""
    settings = settings.with_lock(lock_path)
    fmt: Literal["gguf", "hf"] = "gguf" if source.format == "gguf" else "hf"
    ref = SourceRef(source.display, fmt, source.sha256, path=source.path, quantized=quantized)
    return _run(plan(recipe, settings=settings, source=ref), settings, progress, warnings)


def _run(p: Plan, settings: Settings, progress: ProgressFn, warnings: list[str]) -> QuantizeResult:
    """Run a one-target plan; the result holds the entry the pipeline pinned and every warning."""
    run(p, settings=settings, progress=progress)
    (target,) = p.recipe.targets
    entry = Lockfile.load(writable_lock_path(settings.lock_path)).get(target.name)  # where the run pinned it
    return QuantizeResult(target.out, entry, Provenance(**(entry.provenance or {})), (*warnings, *p.warnings))


def _onnx(
    src: str | Path,
    to: str,
    out: str | Path | None,
    calibration: str | Path | None,
    name: str | None,
    lock_path: str | Path | None,
    settings: Settings,
    progress: ProgressFn,
) -> QuantizeResult:
    """ONNX: ``compress.onnx.to_onnx`` runs the pipeline on the Hugging Face folder (a GGUF source's
    dequantized twin, shared with distillation teachers); this resolves the source and names the output."""
    from edgekit.compress.onnx import ALIASES, ENCODER_MODES, MODES, plan_onnx

    mode = to.strip().lower()
    if ALIASES.get(mode, mode) not in MODES and mode not in ENCODER_MODES:
        valid = sorted({*MODES, *ALIASES})
        raise InputError(f"unknown ONNX quantization type {to!r}", f"Use one of: {', '.join(valid)}.")
    if name is not None and not NAME_RE.match(name):
        raise InputError(f"bad model name {name!r}", "Use letters, digits, '.', '_' and '-'.")
    source = resolve(src, settings=settings, progress=progress)
    hf = source.path
    if source.format != "hf":
        hf = dequantized(source.path, source.sha256, settings, progress)
    base = output_stem(source.display)
    out_path = (Path(out) if out is not None else Path.cwd() / f"{base}-{mode}").resolve()
    settings = settings.with_lock(lock_path)
    name = name or f"{base}-{mode}"
    p = plan_onnx(
        hf,
        out_path,
        mode,
        calibration=calibration,
        name=name,
        source=source.display,
        source_sha256=source.sha256,
        settings=settings,
    )
    return _run(p, settings, progress, [source.warning] if source.warning else [])
