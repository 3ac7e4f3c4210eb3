"""The compression pipeline: convert, calibrate, quantize and distill models into lock-pinned artifacts.

How data flows: a recipe (``recipe.py``: a TOML file, or the one-target recipe that ``quantize()`` and
``onnx.to_onnx()`` hold in memory) names a source, targets and calibration data. ``pipeline/plan.py`` turns
it into steps (dequantize, distill, convert, imatrix, export, one per target, eval), each with its inputs,
an output path and a cache key made of its inputs' hashes, its settings and the tool versions;
``pipeline/run.py`` runs the steps that are not up to date (``pipeline/cache.py`` records what each key
wrote) through their passes, one class per file in ``passes/`` behind ``step.Pass``, beside the function
that does the work (the dequantize and distill steps in ``hf.py`` and ``distill/``). Every output is written
atomically, and each target is pinned in models.lock with its provenance by ``provenance.record`` (which
also pins ``edgekit distill``'s student). ``source.py`` resolves what a user names (lock name, path, hub
revision) through ``models/resolve``.

The public names (``__all__``) import on first use; ``edgekit.quantize`` and ``edgekit.run_recipe`` are
the facade's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import exports

if TYPE_CHECKING:
    from edgekit.compress.calibration import CalibrationSet, load_calibration
    from edgekit.compress.imatrix import Imatrix, check_imatrix, read_imatrix, write_imatrix
    from edgekit.compress.onnx import to_onnx
    from edgekit.compress.passes.gguf_quantize import TensorOverrides
    from edgekit.compress.passes.imatrix import compute_imatrix
    from edgekit.compress.pipeline import RunResult, plan, run, run_recipe
    from edgekit.compress.provenance import Provenance
    from edgekit.compress.recipe import Recipe, load_recipe

__all__ = [
    "CalibrationSet",
    "Imatrix",
    "Provenance",
    "Recipe",
    "RunResult",
    "TensorOverrides",
    "check_imatrix",
    "compute_imatrix",
    "load_calibration",
    "load_recipe",
    "plan",
    "read_imatrix",
    "run",
    "run_recipe",
    "to_onnx",
    "write_imatrix",
]

_PUBLIC: dict[str, tuple[str, str]] = {
    "CalibrationSet": ("edgekit.compress.calibration", "CalibrationSet"),
    "Imatrix": ("edgekit.compress.imatrix", "Imatrix"),
    "Provenance": ("edgekit.compress.provenance", "Provenance"),
    "Recipe": ("edgekit.compress.recipe", "Recipe"),
    "RunResult": ("edgekit.compress.pipeline", "RunResult"),
    "TensorOverrides": ("edgekit.compress.passes.gguf_quantize", "TensorOverrides"),
    "check_imatrix": ("edgekit.compress.imatrix", "check_imatrix"),
    "compute_imatrix": ("edgekit.compress.passes.imatrix", "compute_imatrix"),
    "load_calibration": ("edgekit.compress.calibration", "load_calibration"),
    "load_recipe": ("edgekit.compress.recipe", "load_recipe"),
    "plan": ("edgekit.compress.pipeline", "plan"),
    "read_imatrix": ("edgekit.compress.imatrix", "read_imatrix"),
    "run": ("edgekit.compress.pipeline", "run"),
    "run_recipe": ("edgekit.compress.pipeline", "run_recipe"),
    "to_onnx": ("edgekit.compress.onnx", "to_onnx"),
    "write_imatrix": ("edgekit.compress.imatrix", "write_imatrix"),
}
__getattr__, __dir__ = exports(__name__, _PUBLIC)
