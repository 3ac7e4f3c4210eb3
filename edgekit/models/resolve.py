"""One resolver: what a user named (a models.lock entry or a file or folder path) -> an ``Artifact``.

Loading, the drift gate, compression and distillation all take a model the same way. ``locate`` decides
what a spec names and where its bytes are, reading only the lock and the file system; each caller then
says which formats it takes (with its own words) before ``fetch`` pulls and verifies a lock entry or
hashes a path (remembered by path, size and mtime, so a second run does not hash again). A hub id
(``org/name@<commit>``) is a compression source only and is resolved there (``compress/source.py``).

Formats: a ``.gguf`` (any file) is ``gguf``; a folder with ``*.onnx`` files is ``onnx``; a folder with a
``config.json`` and no ONNX file is ``hf``; a lock entry's format is the one it declares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from edgekit.config import Settings
from edgekit.errors import ModelFileError
from edgekit.files import ProgressFn, content_size, no_progress
from edgekit.models.lock import ModelEntry, looks_like_path
from edgekit.models.store import ModelStore
from edgekit.models.verify import remembered_sha256

PathFormat = Literal["gguf", "onnx", "hf", "folder"]
"""What lies at a path; ``folder`` is a folder that is none of the model layouts."""


@dataclass(frozen=True)
class Artifact:
    spec: str
    """What the user wrote."""
    name: str
    """The lock entry's name, or the file or folder name."""
    format: str
    """``gguf``, ``onnx``, ``hf`` or ``data`` for a lock entry; a ``PathFormat`` for a path."""
    path: Path
    """Where the bytes are (for a lock entry not fetched yet: where the store will put them)."""
    sha256: str = ""
    """The content hash: a lock entry's pin; a path's once ``fetch`` hashed it."""
    entry: ModelEntry | None = None
    """The models.lock entry, when the spec named one."""

    @property
    def license(self) -> str:
        return self.entry.license if self.entry is not None else "unknown"

    @property
    def size(self) -> int:
        return self.entry.size if self.entry is not None else content_size(self.path)


def path_format(path: Path) -> PathFormat:
    if not path.is_dir():
        return "gguf"
    if any(path.glob("*.onnx")):
        return "onnx"
    return "hf" if (path / "config.json").is_file() else "folder"


def locate(spec: str | Path | None, *, settings: Settings | None = None) -> Artifact:
    """What ``spec`` names (None: the lock's default entry), without fetching or hashing anything. A path
    that does not exist and a name models.lock does not have are one-line errors (``ModelFileError``,
    ``UnknownModelError``)."""
    settings = settings or Settings.from_env()
    text = "" if spec is None else str(spec)
    if isinstance(spec, Path) or (spec is not None and looks_like_path(text)):
        path = Path(text).expanduser()
        if not path.exists():
            raise ModelFileError(
                f"{path}: no such file or folder", "Check the path, or use a name from 'edgekit models list'."
            )
        return Artifact(text, path.name, path_format(path), path)
    store = ModelStore(settings)
    entry = store.lock.get(spec)
    return Artifact(text or entry.name, entry.name, entry.format, store.path_for(entry), entry.sha256, entry)


def fetch(
    artifact: Artifact,
    *,
    settings: Settings | None = None,
    progress: ProgressFn = no_progress,
    stage: str = "hash",
    hash_path: bool = True,
) -> Artifact:
    """``artifact`` with its bytes in place: a lock entry pulled (or found) and verified; a path hashed
    unless ``hash_path`` is false (loading a file to chat with needs no hash)."""
    settings = settings or Settings.from_env()
    if artifact.entry is not None:
        return replace(artifact, path=ModelStore(settings).ensure(artifact.entry.name, progress))
    if artifact.sha256 or not hash_path:
        return artifact
    return replace(artifact, sha256=remembered_sha256(artifact.path, settings.cache_dir, progress, stage))
