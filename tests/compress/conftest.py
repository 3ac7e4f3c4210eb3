"""Fixtures for compression tests: the default model as an F16 GGUF converted from its HF folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_f16_gguf(default_hf: Path) -> Path:
    """``default_hf`` converted to an F16 GGUF whose tokenizer passed the check against the HF folder.

    Cached next to the HF folder, so later sessions reuse it; only a file that passed the check stays.
    """
    from edgekit.compress.passes.gguf_convert import convert_to_gguf
    from edgekit.compress.passes.tokenizer_check import check_tokenizer

    out = default_hf.parent.parent / "converted" / f"{default_hf.name}.F16.gguf"
    if not out.is_file():
        convert_to_gguf(default_hf, out, outtype="f16")
        try:
            check_tokenizer(default_hf, out)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    return out
