"""The on-device sentence encoder behind the harmful-content classifier: all-MiniLM-L6-v2 as int8 ONNX.

``encoder_dir()`` finds the int8 export in the edgekit cache, next to the models.lock entry it was built
from, and builds it on first use (the lock entry is pulled and verified, then exported by the compression
pipeline's encoder pass) when the ``onnx-export`` extra is installed; without it, the error names the
command. ``Encoder.embed`` mean-pools the token embeddings with the attention mask and L2-normalizes them,
exactly like sentence-transformers' pipeline for this model.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.config import Settings
from edgekit.errors import MissingDependencyError, ModelFileError

ENCODER_MODEL = "all-minilm-l6-v2"
EXPORT_DIR = "onnx-int8"
MAX_TOKENS = 256
_BUILD_LOCK = threading.Lock()


def encoder_dir(name: str = ENCODER_MODEL, *, settings: Settings | None = None) -> Path:
    """The int8 ONNX export of models.lock entry ``name``, built once into the cache."""
    import importlib.util

    import edgekit
    from edgekit.compress.passes.onnx_encoder import ONNX_EXTRA, export_encoder

    with _BUILD_LOCK:
        source = edgekit.pull(name, settings=settings)
        out = source.parent / EXPORT_DIR
        if (out / "model.onnx").is_file():
            return out
        if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("torch") is None:
            raise MissingDependencyError(
                f"the safety classifier needs the int8 ONNX export of {name}, which is built once on first "
                "use with optimum-onnx (not installed)",
                f"Run: {ONNX_EXTRA}; or turn the classifier off ([classifier] enabled = false).",
            )
        return export_encoder(source, out, int8=True)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Encoder:
    """Sentence embeddings from an ONNX feature-extraction folder (model.onnx + tokenizer.json)."""

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        try:
            self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as e:
            raise ModelFileError(f"{self.folder}: cannot read tokenizer.json ({e})") from None
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or Settings.from_env().threads or 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:
            raise ModelFileError(f"{self.folder}: cannot load model.onnx ({str(e)[:200]})") from None
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.sha256 = file_sha256(self.folder / "model.onnx")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, mean-pooled with the attention mask and L2-normalized."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        batch = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norm, 1e-12, None)).astype(np.float32)


_ENCODERS: dict[str, Encoder] = {}


def shared_encoder(name: str = ENCODER_MODEL) -> Encoder:
    """One encoder per process and model (ONNX sessions are thread-safe for run())."""
    key = f"{name}:{os.environ.get('EDGEKIT_CACHE_DIR', '')}"
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(encoder_dir(name))
    return _ENCODERS[key]
