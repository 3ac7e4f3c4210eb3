"""The ONNX targets of ``edgekit quantize --format onnx``, built by the pipeline.

``to_onnx(hf_dir, out_dir, mode)`` checks the options, then runs a one-target recipe held in memory
through the pipeline (``compress/pipeline``), as ``quantize`` does for GGUF. A causal LM is exported with
past key values (``passes/onnx_export.py``, a cached step) and, unless ``mode`` is ``fp32``, quantized
(``passes/onnx_quantize.py``: ``int8-dynamic``, ``int8-static`` with calibration text, ``int4``); an
fp32 export given as ``hf_dir`` is only quantized. An encoder (BERT-like, e.g. all-MiniLM-L6-v2) takes
``fp32`` or ``int8``: the int8 build of a BERT folder with safetensors weights is the torch-free
``passes/bert_encoder.py``; any other goes to optimum-onnx's export (``passes/onnx_encoder.py``). The
output gets a models.lock entry (format onnx) whose provenance names the source and its sha256, the mode,
the calibration text's sha256 and the tool versions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from edgekit.compress.hf import is_encoder
from edgekit.compress.passes.onnx_export import check_causal_lm
from edgekit.compress.passes.onnx_quantize import MODES as QUANT_MODES
from edgekit.compress.passes.onnx_quantize import check_mode
from edgekit.compress.pipeline import Plan, SourceRef, plan, run
from edgekit.compress.recipe import Calibration, Recipe, Target
from edgekit.config import Settings
from edgekit.errors import InputError
from edgekit.files import ProgressFn, content_sha256, no_progress

MODES = ("fp32", *QUANT_MODES)
ENCODER_MODES = ("fp32", "int8")
ALIASES = {"int8": "int8-dynamic", "float32": "fp32"}


def to_onnx(
    hf_dir: Path,
    out_dir: Path,
    mode: str = "fp32",
    *,
    calibration: str | Path | None = None,
    block_size: int = 32,
    lock_path: Path | None = None,
    name: str | None = None,
    source: str | None = None,
    source_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Build the ONNX target ``mode`` of ``hf_dir`` at ``out_dir`` and pin it in ``lock_path`` (default:
    the lock edgekit uses) as ``name`` (default: the folder's name); returns ``out_dir``.

    ``hf_dir`` may also be an fp32 export written earlier (it holds ``model.onnx``): it is then only
    quantized. ``calibration``: a text file or folder, for ``int8-static``. ``source``/``source_sha256``
    describe what the user named (a lock name, hub id@revision) for the provenance; by default the
    folder's path and content hash. ``plan_onnx`` takes the same arguments and returns the plan instead
    of running it (its ``warnings`` say when the calibration text overlaps the drift gate's).
    """
    settings = Settings.from_env().with_lock(lock_path)
    p = plan_onnx(
        hf_dir,
        out_dir,
        mode,
        calibration=calibration,
        block_size=block_size,
        name=name,
        source=source,
        source_sha256=source_sha256,
        settings=settings,
    )
    run(p, settings=settings, progress=progress or no_progress)
    return p.recipe.targets[0].out


def plan_onnx(
    hf_dir: Path,
    out_dir: Path,
    mode: str = "fp32",
    *,
    calibration: str | Path | None = None,
    block_size: int = 32,
    lock_path: Path | None = None,
    name: str | None = None,
    source: str | None = None,
    source_sha256: str | None = None,
    settings: Settings | None = None,
) -> Plan:
    """The checked one-target plan ``to_onnx`` runs; builds nothing. ``settings`` (default: from the
    environment) with ``lock_path``, if given, in place of its own: those the run needs too."""
    from edgekit.compress.calibration import load_calibration

    hf_dir, out_dir = Path(hf_dir), Path(out_dir).resolve()
    encoder = is_encoder(hf_dir)
    exported = (hf_dir / "model.onnx").is_file()
    mode = _mode(hf_dir, mode, encoder)
    if not encoder:
        if exported and mode == "fp32":
            raise InputError(
                f"{hf_dir} is already an ONNX export", "Pick a quantized mode, or use it as it is."
            )
        if not exported:
            check_causal_lm(hf_dir)
        if mode != "fp32":
            data = (
                load_calibration(calibration) if calibration is not None and mode == "int8-static" else None
            )
            check_mode(mode, data, block_size)
    spec = source or str(hf_dir)
    target = Target(
        name=name or out_dir.name,
        format="onnx",
        type=mode,
        out=out_dir,
        calibrate=mode == "int8-static",
        block_size=block_size if mode == "int4" else None,
        role="encoder" if encoder else "chat",
        description=f"{spec} to ONNX {mode} by edgekit",
    )
    recipe = Recipe(
        path=Path("to_onnx"),
        sha256="",  # held in memory: no recipe file to name in the provenance
        source=spec,
        targets=(target,),
        out_dir=out_dir.parent,
        calibration=Calibration(data=Path(calibration).resolve())
        if target.calibrate and calibration
        else None,
        made_by="quantize",
    )
    fmt: Literal["hf", "onnx"] = "onnx" if exported else "hf"
    ref = SourceRef(spec, fmt, source_sha256 or content_sha256(hf_dir), path=hf_dir, encoder=encoder)
    return plan(recipe, settings=(settings or Settings.from_env()).with_lock(lock_path), source=ref)


def _mode(hf_dir: Path, mode: str, encoder: bool) -> str:
    """``mode`` in the spelling the passes use, or an InputError naming the valid ones."""
    mode = mode.strip().lower()
    if encoder:
        mode = {"int8-dynamic": "int8", "float32": "fp32"}.get(mode, mode)
        if mode not in ENCODER_MODES:
            raise InputError(
                f"{hf_dir} is an encoder; ONNX target {mode!r} applies to causal LMs only",
                f"Use one of: {', '.join(ENCODER_MODES)} for encoders.",
            )
        return mode
    mode = ALIASES.get(mode, mode)
    if mode not in MODES:
        raise InputError(f"unknown ONNX target {mode!r}", f"Use one of: {', '.join(MODES)}.")
    return mode
