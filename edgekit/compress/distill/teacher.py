"""Finding the teacher: a Hugging Face folder, a GGUF file or a models.lock name, as an HF folder.

GGUF teachers (the lock's usual format) are dequantized once with ``gguf_to_hf`` into the model cache,
next to the GGUF, and reused. The teacher's sha256 is the lock entry's (what the user pinned), the GGUF
file's, or the folder's manifest hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.compress.hf import HF_LAYOUT, gguf_to_hf
from edgekit.config import Settings
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, content_sha256, no_progress
from edgekit.models.lock import Lockfile
from edgekit.models.store import ModelStore


@dataclass(frozen=True)
class Teacher:
    folder: Path  # a Hugging Face folder
    sha256: str
    license: str = "unknown"


def _from_gguf(gguf: Path, progress: ProgressFn) -> Path:
    folder = gguf.parent.parent / "hf" / f"{gguf.stem}.v{HF_LAYOUT}"  # where the tests' default_hf lives
    if not (folder / "config.json").is_file():
        progress("dequantize teacher", 0, None)
        gguf_to_hf(gguf, folder)
    return folder


def resolve_teacher(spec: str, settings: Settings, progress: ProgressFn = no_progress) -> Teacher:
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFileError(
                f"{path}: not a Hugging Face model folder (no config.json)",
                "Point at a folder saved with save_pretrained, or use a models.lock name.",
            )
        return Teacher(path, content_sha256(path, progress, stage="hash teacher"))
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelFileError(f"{path}: not a GGUF file or model folder", "Give an HF folder or a .gguf.")
        sha = content_sha256(path, progress, stage="hash teacher")
        return Teacher(_from_gguf(path, progress), sha)
    if "/" in spec or spec.endswith(".gguf"):
        raise ModelFileError(f"{spec}: no such file or folder", "Check the path, or use a models.lock name.")
    entry = Lockfile.load(settings.lock_path).get(spec)
    local = ModelStore(settings).ensure(entry.name, progress)
    if entry.format == "hf":
        return Teacher(local, entry.sha256, entry.license)
    if entry.format == "gguf":
        return Teacher(_from_gguf(local, progress), entry.sha256, entry.license)
    raise InputError(
        f"{entry.name} is an {entry.format} model; distillation needs its weights in PyTorch",
        "Use a GGUF or Hugging Face entry, or an HF folder.",
    )
