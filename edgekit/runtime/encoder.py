"""The on-device sentence encoders: one ``Encoder`` class over any ONNX feature-extraction folder, used by
the safety classifier, the cascade's learned router and the server's embeddings endpoint.

Two models are in use, both ``onnx`` entries of models.lock that the model store builds on this machine
from pinned inputs, deterministically, and verifies like a download (no torch, no optimum):
``all-minilm-l6-v2-onnx`` (English; the learned router's, from the ``all-minilm-l6-v2`` folder by the
``bert-encoder`` pass) and ``multilingual-e5-small-int8`` (about 100 languages, the safety classifier's,
by the ``e5-encoder`` pass). ``encoder_dir()`` returns the verified folder; naming the Hugging Face folder
an encoder is built from names its build.

A folder may say how it wants to be fed in ``edgekit-encoder.json``: ``prefix`` (prepended to every
text: e5 expects ``"query: "``), ``max_tokens`` (truncation, special tokens included; default 256),
``pooling`` (only ``"mean"``) and ``dim``. ``Encoder.embed`` mean-pools the token embeddings with the
attention mask and L2-normalizes them, as sentence-transformers does for both models. Each text runs
alone: the int8 models quantize activations per run, so batching texts would make a text's embedding
depend on its batch-mates (and padding would cost time).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekit.config import Settings
from edgekit.errors import InputError, ModelFileError
from edgekit.files import file_sha256
from edgekit.models.lock import BuildSource, Lockfile, ModelEntry
from edgekit.models.store import ModelStore

ENCODER_MODEL = "all-minilm-l6-v2-onnx"
"""The default encoder (the learned router's)."""
MULTILINGUAL_MODEL = "multilingual-e5-small-int8"
MAX_TOKENS = 256
CONFIG_FILE = "edgekit-encoder.json"
_BUILD_LOCK = threading.Lock()


def encoder_dir(name: str = ENCODER_MODEL, *, settings: Settings | None = None) -> Path:
    """The verified int8 ONNX folder of models.lock entry ``name`` (built once into the cache)."""
    store = ModelStore(settings)
    entry = store.lock.get(name)
    if entry.format == "hf" and (build := _built_from(store.lock, entry)) is not None:
        entry = build
    if entry.format != "onnx" or entry.role != "encoder":
        raise InputError(
            f"{entry.name} is not a sentence encoder ({entry.format}, role {entry.role})",
            "Name an ONNX entry with role 'encoder' (see 'edgekit models list').",
        )
    with _BUILD_LOCK:
        folder = store.ensure(entry.name)
    if not (folder / "model.onnx").is_file():
        raise ModelFileError(f"{folder}: no model.onnx in {entry.name}'s folder")
    return folder


def _built_from(lock: Lockfile, source: ModelEntry) -> ModelEntry | None:
    """The one ONNX encoder entry built from ``source`` alone, if there is exactly one."""
    builds = [
        e
        for e in lock
        if e.format == "onnx" and e.role == "encoder" and isinstance(e.source, BuildSource)
        if list(e.source.inputs.values()) == [source.name]
    ]
    return builds[0] if len(builds) == 1 else None


def read_config(folder: Path) -> dict[str, object]:
    """``edgekit-encoder.json`` of ``folder`` (empty when absent), with its fields checked."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: expected a JSON object")
    if config.get("pooling", "mean") != "mean":
        raise ModelFileError(f"{path}: pooling {config['pooling']!r} is not supported (only 'mean')")
    if not isinstance(config.get("prefix", ""), str):
        raise ModelFileError(f"{path}: prefix must be a string")
    max_tokens = config.get("max_tokens", MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 2:
        raise ModelFileError(f"{path}: max_tokens must be an integer of at least 2")
    return config


class Encoder:
    """Sentence embeddings from an ONNX feature-extraction folder (model.onnx + tokenizer.json)."""

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        config = read_config(self.folder)
        self.prefix = str(config.get("prefix", ""))
        self.max_tokens = int(config.get("max_tokens", MAX_TOKENS))  # type: ignore[call-overload]
        try:
            self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as e:
            raise ModelFileError(f"{self.folder}: cannot read tokenizer.json ({e})") from None
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()
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
        width = self.session.get_outputs()[0].shape[-1]
        self.dim = int(config.get("dim", width if isinstance(width, int) else 384))  # type: ignore[call-overload]
        self.sha256 = file_sha256(self.folder / "model.onnx")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, mean-pooled with the attention mask and L2-normalized."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            ids = np.array([self.tokenizer.encode(self.prefix + text).ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            pooled = self.session.run(None, feed)[0][0].mean(axis=0)
            out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return out


_ENCODERS: dict[str, Encoder] = {}


def shared_encoder(name: str = ENCODER_MODEL) -> Encoder:
    """One encoder per process, model name and cache (ONNX sessions are thread-safe for run())."""
    key = f"{name}:{os.environ.get('EDGEKIT_CACHE_DIR', '')}:{os.environ.get('EDGEKIT_LOCK', '')}"
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(encoder_dir(name))
    return _ENCODERS[key]
