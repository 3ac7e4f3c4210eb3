"""The ONNX targets of ``edgekit quantize --format onnx``: export, quantize, record in models.lock.

``to_onnx(hf_dir, out_dir, mode)`` takes a Hugging Face folder. A causal LM is exported with past key
values (``passes/onnx_export.py``) and, unless ``mode`` is ``fp32``, quantized
(``passes/onnx_quantize.py``: ``int8-dynamic``, ``int8-static`` with calibration texts, ``int4``); the
float export is an intermediate in a temporary sibling of ``out_dir`` and removed afterwards. An encoder
(BERT-like, e.g. all-MiniLM-L6-v2) takes ``fp32`` or ``int8``: the int8 build of a BERT folder with
safetensors weights is the torch-free ``passes/bert_encoder.py``; any other goes to optimum-onnx's export
(``passes/onnx_encoder.py``). With ``lock_path`` the output gets a models.lock entry (format onnx) whose
provenance table names the source and its sha256, the mode, the calibration set's sha256 and the tool
versions.
"""

from __future__ import annotations

import importlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekit.compress.passes.onnx_export import check_causal_lm, export_causal_lm
from edgekit.compress.passes.onnx_quantize import (
    MODES as QUANT_MODES,
)
from edgekit.compress.passes.onnx_quantize import (
    CalibrationTexts,
    as_calibration,
    check_mode,
    quantize_onnx,
)
from edgekit.compress.provenance import Provenance, record
from edgekit.errors import InputError
from edgekit.files import ProgressFn, atomic_output, content_sha256

MODES = ("fp32", *QUANT_MODES)
ENCODER_MODES = ("fp32", "int8")
ALIASES = {"int8": "int8-dynamic", "float32": "fp32"}
ENCODER_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "deberta", "deberta-v2"}
)


def _config(hf_dir: Path) -> dict[str, Any]:
    """The folder's config.json, or {} when it is missing or unreadable."""
    try:
        config = json.loads((Path(hf_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def is_encoder(hf_dir: Path) -> bool:
    """True for a BERT-like encoder folder (the sentence-embedding and classifier path)."""
    config = _config(hf_dir)
    archs = config.get("architectures") or []
    if any(str(a).endswith("ForCausalLM") for a in archs):
        return False
    return config.get("model_type") in ENCODER_TYPES


def to_onnx(
    hf_dir: Path,
    out_dir: Path,
    mode: str = "fp32",
    *,
    calibration: CalibrationTexts | Sequence[str] | None = None,
    block_size: int = 32,
    lock_path: Path | None = None,
    name: str | None = None,
    source: str | None = None,
    source_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> Path:
    """Build the ONNX target ``mode`` of ``hf_dir`` at ``out_dir``; returns ``out_dir``.

    ``hf_dir`` may also be an fp32 export written earlier (it holds ``model.onnx``): it is then only
    quantized.

    ``source``/``source_sha256`` describe what the user named (a lock name, hub id@revision) for the
    provenance; by default the folder's path and manifest hash.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    cal = as_calibration(calibration)
    if is_encoder(hf_dir):
        return _encoder(hf_dir, out_dir, mode, lock_path, name, source, source_sha256)
    mode = ALIASES.get(mode, mode)
    if mode not in MODES:
        raise InputError(f"unknown ONNX target {mode!r}", f"Use one of: {', '.join(MODES)}.")
    if mode != "fp32":
        check_mode(mode, cal, block_size)
    check_causal_lm(hf_dir)
    if (hf_dir / "model.onnx").is_file():  # already an fp32 export: quantize it as it is
        if mode == "fp32":
            raise InputError(
                f"{hf_dir} is already an ONNX export", "Pick a quantized mode, or use it as it is."
            )
        quantize_onnx(hf_dir, out_dir, mode, calibration=cal, block_size=block_size, progress=progress)
    elif mode == "fp32":
        export_causal_lm(hf_dir, out_dir, progress=progress)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".fp32", dir=out_dir.parent))
        try:
            exported = export_causal_lm(hf_dir, work / "fp32", progress=progress)
            quantize_onnx(exported, out_dir, mode, calibration=cal, block_size=block_size, progress=progress)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if lock_path is not None:
        settings: dict[str, object] = {"task": "text-generation-with-past"}
        if mode == "int4":
            settings["block_size"] = block_size
        record_onnx(
            lock_path,
            out_dir,
            mode,
            name=name or out_dir.name,
            source=source or str(hf_dir),
            source_sha256=source_sha256 or content_sha256(hf_dir),
            calibration_sha256=cal.sha256 if cal is not None and mode == "int8-static" else "",
            settings=settings,
        )
    return out_dir


def record_onnx(
    lock_path: Path,
    out_dir: Path,
    mode: str,
    *,
    name: str,
    source: str,
    source_sha256: str,
    calibration_sha256: str = "",
    settings: dict[str, object] | None = None,
    role: str = "chat",
) -> Provenance:
    """Pin ``out_dir`` in models.lock as ``name`` with its provenance; returns the provenance."""
    provenance = Provenance(
        source=source,
        source_sha256=source_sha256,
        step="export" if mode == "fp32" else "quantize",
        quant_type=mode,
        calibration_sha256=calibration_sha256,
        settings=dict(settings or {}),
    )
    record(Path(lock_path), Path(out_dir), provenance, name=name, role=role)
    return provenance


def _encoder(
    hf_dir: Path,
    out_dir: Path,
    mode: str,
    lock_path: Path | None,
    name: str | None,
    source: str | None,
    source_sha256: str | None,
) -> Path:
    mode = {"int8-dynamic": "int8", "float32": "fp32"}.get(mode, mode)
    if mode not in ENCODER_MODES:
        raise InputError(
            f"{hf_dir} is an encoder; ONNX target {mode!r} applies to causal LMs only",
            f"Use one of: {', '.join(ENCODER_MODES)} for encoders.",
        )
    settings: dict[str, object] = {"task": "feature-extraction"}
    if mode == "int8" and _torch_free(hf_dir):
        from edgekit.compress.passes.bert_encoder import build

        with atomic_output(Path(out_dir), folder=True) as tmp:
            build({"model": Path(hf_dir)}, tmp)
        settings["builder"] = "bert-encoder"
    else:
        # Imported by name: this pass is optional here and loads torch and optimum only when used.
        encoder = importlib.import_module("edgekit.compress.passes.onnx_encoder")
        encoder.export_encoder(hf_dir, out_dir, int8=mode == "int8")
    if lock_path is not None:
        record_onnx(
            lock_path,
            out_dir,
            mode,
            name=name or out_dir.name,
            source=source or str(hf_dir),
            source_sha256=source_sha256 or content_sha256(hf_dir),
            settings=settings,
            role="encoder",
        )
    return out_dir


def _torch_free(hf_dir: Path) -> bool:
    """A BERT folder with safetensors weights: its int8 build is the deterministic ``bert-encoder`` pass
    (numpy and onnxruntime only), the one the model store pins ``all-minilm-l6-v2-onnx`` with."""
    return _config(hf_dir).get("model_type") == "bert" and (Path(hf_dir) / "model.safetensors").is_file()
