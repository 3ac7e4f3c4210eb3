"""Local and remote inference behind one ``Backend`` seam (``base.py``): llama.cpp for GGUF
(``llamacpp.py``), onnxruntime for ONNX causal LMs (``onnx.py``) and sentence encoders (``encoder.py``),
an OpenAI-compatible endpoint (``remote.py``); chat messages, parameters and results (``types.py``),
GGUF header checks before llama.cpp reads a file (``gguf.py``, ``llamacpp_fields.py``, ``probe.py``), and
the thread policy (``threads.py``). Nothing here knows of schema, safety or routing: a grammar arrives as a
``types.TokenConstraint``.

Its public names (``__all__``) import on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import exports

if TYPE_CHECKING:
    from edgekit.runtime.base import Backend, BackendBase, Capabilities
    from edgekit.runtime.encoder import Encoder, encoder_dir
    from edgekit.runtime.gguf import GGUFInfo, read_gguf
    from edgekit.runtime.llamacpp import LlamaCppBackend
    from edgekit.runtime.onnx import OnnxBackend
    from edgekit.runtime.remote import RemoteBackend
    from edgekit.runtime.types import (
        ChatMessage,
        Chunk,
        Completion,
        Confidence,
        GenerationParams,
        ResponseFormat,
        Timings,
        TokenConstraint,
        TokenSignal,
        Usage,
        estimate_tokens,
    )

__all__ = [
    "Backend",
    "BackendBase",
    "Capabilities",
    "ChatMessage",
    "Chunk",
    "Completion",
    "Confidence",
    "Encoder",
    "GGUFInfo",
    "GenerationParams",
    "LlamaCppBackend",
    "OnnxBackend",
    "RemoteBackend",
    "ResponseFormat",
    "Timings",
    "TokenConstraint",
    "TokenSignal",
    "Usage",
    "encoder_dir",
    "estimate_tokens",
    "read_gguf",
]

_PUBLIC: dict[str, tuple[str, str]] = {
    "Backend": ("edgekit.runtime.base", "Backend"),
    "BackendBase": ("edgekit.runtime.base", "BackendBase"),
    "Capabilities": ("edgekit.runtime.base", "Capabilities"),
    "ChatMessage": ("edgekit.runtime.types", "ChatMessage"),
    "Chunk": ("edgekit.runtime.types", "Chunk"),
    "Completion": ("edgekit.runtime.types", "Completion"),
    "Confidence": ("edgekit.runtime.types", "Confidence"),
    "Encoder": ("edgekit.runtime.encoder", "Encoder"),
    "GGUFInfo": ("edgekit.runtime.gguf", "GGUFInfo"),
    "GenerationParams": ("edgekit.runtime.types", "GenerationParams"),
    "LlamaCppBackend": ("edgekit.runtime.llamacpp", "LlamaCppBackend"),
    "OnnxBackend": ("edgekit.runtime.onnx", "OnnxBackend"),
    "RemoteBackend": ("edgekit.runtime.remote", "RemoteBackend"),
    "ResponseFormat": ("edgekit.runtime.types", "ResponseFormat"),
    "Timings": ("edgekit.runtime.types", "Timings"),
    "TokenConstraint": ("edgekit.runtime.types", "TokenConstraint"),
    "TokenSignal": ("edgekit.runtime.types", "TokenSignal"),
    "Usage": ("edgekit.runtime.types", "Usage"),
    "encoder_dir": ("edgekit.runtime.encoder", "encoder_dir"),
    "estimate_tokens": ("edgekit.runtime.types", "estimate_tokens"),
    "read_gguf": ("edgekit.runtime.gguf", "read_gguf"),
}
__getattr__, __dir__ = exports(__name__, _PUBLIC)
