"""``edgekit.quantize``: one call from a source model to a quantized artifact pinned in models.lock.

GGUF path: resolve the source; a Hugging Face folder is converted to an F16 GGUF (cached by the
folder's content hash) and its tokenizer checked against the source; an importance matrix is computed
from calibration text or read from a file; llama.cpp's quantizer writes the output with provenance in
its metadata; the output gets a models.lock entry with the same provenance. ONNX path: the ONNX passes
(``passes/onnx_*.py``) do the work; this module only dispatches to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgekit.compress.hf import dequantized
from edgekit.compress.passes.gguf_convert import OutType
from edgekit.compress.passes.gguf_convert import converted as converted_gguf
from edgekit.compress.passes.gguf_quantize import (
    NEEDS_IMATRIX,
    TensorOverrides,
    is_quantized,
    quant_type,
    quantize_gguf,
)
from edgekit.compress.provenance import Provenance, record
from edgekit.compress.source import output_stem, resolve
from edgekit.config import Settings
from edgekit.errors import InputError, MissingDependencyError
from edgekit.files import ProgressFn, no_progress
from edgekit.models.lock import NAME_RE, ModelEntry

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
    if source.format == "hf":
        outtype: OutType = "f32" if qtype == "F32" else "f16"
        model = converted_gguf(
            source.path, source.sha256, settings.cache_dir, outtype=outtype, progress=progress
        )
        converted = True
    else:
        model, converted = source.path, False
        if is_quantized(model):
            if not allow_requantize:
                raise InputError(
                    f"{source.display} is already quantized; quantizing again compounds the rounding error",
                    "Quantize from an F16/F32 GGUF or the HF folder, or pass allow_requantize=True.",
                )
            warnings.append(
                f"{source.display} is already quantized: requantizing to {qtype} adds a second rounding "
                "error; quality is lower than quantizing from F16"
            )
    im, calibration_sha = _importance(model, calibration, imatrix, settings, progress, warnings)
    base = output_stem(source.display)
    out_path = Path(out) if out is not None else Path.cwd() / f"{base}-{qtype}.gguf"
    if out_path.resolve() == model.resolve():
        raise InputError(f"the output {out_path} is the source file", "Write the output to another path.")
    settings_used: dict[str, Any] = {**overrides.to_dict()}
    if converted:
        settings_used["converted"] = "hf -> gguf f16" if qtype != "F32" else "hf -> gguf f32"
    if allow_requantize and not converted:
        settings_used["allow_requantize"] = True
    provenance = Provenance(
        source=source.display,
        source_sha256=source.sha256,
        step="quantize",
        quant_type=qtype,
        calibration_sha256=calibration_sha,
        imatrix_sha256=im.sha256 if im is not None else "",
        settings=settings_used,
    )
    quantize_gguf(
        model,
        out_path,
        qtype,
        overrides=overrides,
        imatrix=im,
        metadata=provenance.gguf_metadata(),
        allow_requantize=allow_requantize,
        threads=settings.threads,
        progress=progress,
    )
    lock = Path(lock_path) if lock_path is not None else settings.lock_path
    entry = record(
        lock,
        out_path,
        provenance,
        name=name or f"{base}-{qtype.lower().replace('_', '-')}",
        license=source.license,
        description=f"{source.display} quantized to {qtype} by edgekit",
    )
    return QuantizeResult(out_path.resolve(), entry, provenance, tuple(warnings))


def _importance(
    model: Path,
    calibration: str | Path | None,
    imatrix: str | Path | None,
    settings: Settings,
    progress: ProgressFn,
    warnings: list[str],
) -> tuple[Any, str]:
    """(Imatrix or None, calibration sha256 or ""); appends a warning when calibration text overlaps the
    drift gate's evaluation text."""
    if imatrix is not None:
        from edgekit.compress.imatrix import check_imatrix, read_imatrix

        im = read_imatrix(Path(imatrix))
        check_imatrix(im, model)  # llama.cpp would silently skip entries that name no tensor of this model
        return im, ""
    if calibration is None:
        return None, ""
    from edgekit.compress.calibration import check_overlap, load_calibration

    data = load_calibration(Path(calibration))
    overlap = check_overlap(data)
    if overlap.warning:
        warnings.append(overlap.warning)
    try:
        from edgekit.compress.passes.imatrix import compute_imatrix
    except ImportError:
        raise MissingDependencyError(
            "computing an importance matrix from calibration text is not available in this build",
            "Compute one with llama.cpp's llama-imatrix and pass it with imatrix=FILE.",
        ) from None
    compute: Callable[..., Any] = compute_imatrix
    return compute(model, data, threads=settings.threads, progress=progress), data.sha256


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
    """ONNX: ``edgekit.compress.onnx.to_onnx`` exports with optimum-onnx and quantizes with onnxruntime
    (an encoder folder takes the encoder path); this resolves the source and names the output."""
    from edgekit.compress.onnx import ALIASES, ENCODER_MODES, MODES, to_onnx

    mode = to.strip().lower()
    if ALIASES.get(mode, mode) not in MODES and mode not in ENCODER_MODES:
        valid = sorted({*MODES, *ALIASES})
        raise InputError(f"unknown ONNX quantization type {to!r}", f"Use one of: {', '.join(valid)}.")
    if name is not None and not NAME_RE.match(name):
        raise InputError(f"bad model name {name!r}", "Use letters, digits, '.', '_' and '-'.")
    source = resolve(src, settings=settings, progress=progress)
    hf = source.path
    if source.format != "hf":
        hf = dequantized(source.path, source.sha256, settings.cache_dir, progress)
    base = output_stem(source.display)
    out_path = Path(out) if out is not None else Path.cwd() / f"{base}-{mode}"
    data = None
    if calibration is not None:
        from edgekit.compress.calibration import load_calibration

        data = load_calibration(Path(calibration))
    lock = Path(lock_path) if lock_path is not None else settings.lock_path
    name = name or f"{base}-{mode}"
    to_onnx(
        hf,
        out_path,
        mode,
        calibration=data,
        lock_path=lock,
        name=name,
        source=source.display,
        source_sha256=source.sha256,
        progress=progress,
    )
    from edgekit.config import writable_lock_path
    from edgekit.models.lock import Lockfile

    entry = Lockfile.load(writable_lock_path(lock)).get(name)  # where to_onnx wrote it
    warnings = (source.warning,) if source.warning else ()
    return QuantizeResult(out_path.resolve(), entry, Provenance(**(entry.provenance or {})), warnings)
