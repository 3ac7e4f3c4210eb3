"""The default model as an fp32 ONNX export (optimum, past key values), built once per test session.

``default_onnx`` goes through the public front of the ONNX path (``to_onnx`` with mode ``fp32``) and
records the export in a private copy of models.lock next to it (``<folder>/../models.lock``), so tests
can read its provenance. It holds the Q4_1 weights of the default GGUF dequantized to float32, which
makes it the ONNX twin of that GGUF for drift comparisons.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def default_onnx(default_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgekit.compress.onnx import to_onnx

    root = tmp_path_factory.mktemp("onnx")
    lock = root / "models.lock"
    lock.write_text((ROOT / "models.lock").read_text(encoding="utf-8"), encoding="utf-8")
    return to_onnx(default_hf, root / "smollm2-135m-onnx", "fp32", lock_path=lock, name="smollm2-135m-onnx")
