"""Editing models.lock in place with tomlkit, so comments and layout survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from edgekit.config import writable_lock_path
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_replace, content_sha256, content_size, no_progress
from edgekit.models.lock import NAME_RE, BuildSource, FileSource, Format, Lockfile, ModelEntry, render_entry


def detect_format(path: Path) -> Format:
    if path.is_dir():
        if (path / "model.onnx").exists() or any(path.glob("*.onnx")):
            return "onnx"
        if (path / "config.json").exists():
            return "hf"
        raise ModelFileError(f"{path}: folder holds neither an ONNX model nor a Hugging Face config.json")
    with path.open("rb") as f:
        if f.read(4) == b"GGUF":
            return "gguf"
    if path.suffix == ".onnx":
        return "onnx"
    raise ModelFileError(f"{path}: not a GGUF file, ONNX file or model folder")


def add_local(
    lock_path: Path,
    path: Path,
    *,
    name: str,
    role: str = "chat",
    license: str = "unknown",
    description: str = "",
    replace: bool = False,
    provenance: dict[str, Any] | None = None,
    progress: ProgressFn = no_progress,
) -> ModelEntry:
    """Add (or with ``replace``, update) an entry for a local file, hashing it. Returns the new entry.

    ``provenance`` (for derived artifacts) becomes the entry's ``[models.NAME.provenance]`` table.
    """
    if not NAME_RE.match(name):
        raise InputError(f"bad model name {name!r}", "Use letters, digits, '.', '_' and '-'.")
    lock_path = writable_lock_path(lock_path)
    path = path.expanduser().resolve()
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or folder")
    lock = Lockfile.load(lock_path)
    if name in lock.models and not replace:
        raise InputError(
            f"models.lock already has an entry named {name!r}", "Pick another name=NAME or pass replace=True."
        )
    try:
        rel = path.relative_to(lock_path.resolve().parent).as_posix()
    except ValueError:
        rel = str(path)
    entry = ModelEntry(
        name=name,
        format=detect_format(path),
        role=role,
        file=path.name,
        sha256=content_sha256(path, progress, stage="hash"),
        size=content_size(path),
        license=license,
        description=description,
        source=FileSource(kind="file", path=rel),
        provenance=provenance,
    )
    doc = tomlkit.parse(lock_path.read_text(encoding="utf-8"))
    models = doc.setdefault("models", tomlkit.table(is_super_table=True))
    table = tomlkit.table()
    for key, value in render_entry(entry).items():
        if key == "provenance":
            table[key] = _provenance_table(value)
            continue
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            value = inline
        table[key] = value
    models[name] = table
    text = tomlkit.dumps(doc)
    Lockfile.parse(text, lock_path)  # never write a lock we could not read back
    atomic_replace(lock_path, text.encode("utf-8"))
    return entry


def _provenance_table(data: dict[str, Any]) -> Any:
    """A sub-table (``[models.NAME.provenance]``) with nested dicts as inline tables, for readability."""
    table = tomlkit.table()
    for key, value in data.items():
        if isinstance(value, dict):
            inline = tomlkit.inline_table()
            inline.update(value)
            value = inline
        table[key] = value
    return table


def remove_entry(lock_path: Path, name: str) -> None:
    """Delete ``[models.NAME]`` from models.lock, keeping every other line and comment."""
    lock = Lockfile.load(lock_path)
    lock.get(name)  # unknown names get the usual error with suggestions
    if name == lock.default:
        raise InputError(
            f"{name} is the default model of {lock_path}", "Set another 'default' in models.lock first."
        )
    users = [
        e.name
        for e in lock.models.values()
        if isinstance(e.source, BuildSource) and name in e.source.inputs.values()
    ]
    if users:
        raise InputError(f"{name} is a build input of {', '.join(users)}", "Remove those entries first.")
    lock_path = writable_lock_path(lock_path)
    doc = tomlkit.parse(lock_path.read_text(encoding="utf-8"))
    del doc["models"][name]
    text = tomlkit.dumps(doc)
    Lockfile.parse(text, lock_path)
    atomic_replace(lock_path, text.encode("utf-8"))
