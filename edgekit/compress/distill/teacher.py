"""Finding the teacher: a Hugging Face folder, a GGUF file or a models.lock name, as an HF folder.

GGUF teachers (the lock's usual format) are dequantized once into the compression cache
(``hf.dequantized``, the folder a recipe's dequantize step uses too) and reused. The teacher's sha256 is
the lock entry's (what the user pinned), the GGUF file's, or the folder's manifest hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.compress.hf import dequantized
from edgekit.config import Settings
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, no_progress
from edgekit.models.resolve import fetch, locate


@dataclass(frozen=True)
class Teacher:
    folder: Path  # a Hugging Face folder
    sha256: str
    license: str = "unknown"


def resolve_teacher(spec: str, settings: Settings, progress: ProgressFn = no_progress) -> Teacher:
    art = locate(spec, settings=settings)
    if art.entry is not None and art.format not in ("hf", "gguf"):
        raise InputError(
            f"{art.name} is an {art.format} model; distillation needs its weights in PyTorch",
            "Use a GGUF or Hugging Face entry, or an HF folder.",
        )
    hf = art.path.is_dir() if art.entry is None else art.format == "hf"
    if art.entry is None and hf and not (art.path / "config.json").is_file():
        raise ModelFileError(
            f"{art.path}: not a Hugging Face model folder (no config.json)",
            "Point at a folder saved with save_pretrained, or use a models.lock name.",
        )
    if art.entry is None and not hf and art.path.suffix != ".gguf":
        raise ModelFileError(f"{art.path}: not a GGUF file or model folder", "Give an HF folder or a .gguf.")
    art = fetch(art, settings=settings, progress=progress, stage="hash teacher")
    folder = art.path if hf else dequantized(art.path, art.sha256, settings, progress)
    return Teacher(folder, art.sha256, art.license)
