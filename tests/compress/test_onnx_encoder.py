"""The compression pipeline's encoder path: sentence encoder -> int8 ONNX feature extractor, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.compress.passes.onnx_encoder import export_encoder
from edgekit.errors import ModelFileError


@pytest.mark.model
@pytest.mark.slow
def test_export_writes_an_int8_model_that_embeds(tmp_path: Path) -> None:
    import edgekit
    from edgekit.runtime.encoder import Encoder

    source = edgekit.pull("all-minilm-l6-v2")
    out = export_encoder(source, tmp_path / "enc")
    assert {"model.onnx", "tokenizer.json", "edgekit-encoder.json"} <= {p.name for p in out.iterdir()}
    assert (out / "model.onnx").stat().st_size < (source / "model.safetensors").stat().st_size / 3
    vectors = Encoder(out, threads=1).embed(["hello there", "general kenobi"])
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_not_a_model_folder_fails_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(ModelFileError, match=r"no config\.json"):
        export_encoder(tmp_path / "src", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
