"""Fixtures for compression tests: the default model as an F16 GGUF converted from its HF folder, and as
an fp32 ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_f16_gguf(default_hf: Path) -> Path:
    """``default_hf`` converted to an F16 GGUF whose tokenizer passed the check against the HF folder.

    Cached beside the HF folder (in its cache entry, so a new dequantization gets a new conversion) and
    reused by later sessions; only a file that passed the check stays.
    """
    from edgekit.compress.passes.gguf_convert import convert_checked

    out = default_hf.parent / f"{default_hf.name}.F16.gguf"
    return out if out.is_file() else convert_checked(default_hf, out, outtype="f16")


@pytest.fixture(scope="session")
def default_onnx(default_hf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``default_hf`` exported to fp32 ONNX with past key values, once per session, through ``to_onnx``.

    The export is pinned in a private copy of models.lock next to it (``<folder>/../models.lock``). It
    holds the default GGUF's Q4_1 weights dequantized, so it is that GGUF's twin for drift comparisons.
    """
    from edgekit.compress.onnx import to_onnx

    root = tmp_path_factory.mktemp("onnx")
    lock = root / "models.lock"
    lock.write_text((Path(__file__).resolve().parents[2] / "models.lock").read_text(encoding="utf-8"))
    return to_onnx(default_hf, root / "smollm2-135m-onnx", "fp32", lock_path=lock, name="smollm2-135m-onnx")
