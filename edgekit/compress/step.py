"""A compression step and the seam its pass implements: what ``pipeline`` plans and each pass runs.

A pass is a small class beside the function that does its work (``passes/gguf_convert.py``'s
``Convert``, ...), registered by kind in ``pipeline.PASSES`` and imported only when a plan needs it, so
heavy dependencies load only then. ``run(ctx)`` writes ``ctx.out``: a temporary sibling of the step's
output that the pipeline renames into place only when the pass returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edgekit.config import Settings
from edgekit.files import ProgressFn

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
