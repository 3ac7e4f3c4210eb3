"""Distillation: a depth-pruned student initialized from the teacher, trained to imitate it.

    from edgekit.compress.distill import DistillConfig, distill, register
    result = distill(DistillConfig(teacher="smollm2-135m-instruct", drop_layers=6, out=Path("student")))
    register(result, config, name="smollm2-distill-24l")   # models.lock entry with provenance

Two objectives: ``mode="logits"`` (temperature-scaled KL to the teacher's soft targets on a text set)
and ``mode="sequence"`` (cross-entropy on a generator's answers to a prompt set). Layers are chosen by
ShortGPT block influence (``prune.py``). Needs the ``torch`` extra; torch is imported only when a run
starts, so this package imports without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.compress.distill.config import MODES, DistillConfig, DistillResult
from edgekit.compress.hf import require
from edgekit.config import Settings
from edgekit.files import ProgressFn, no_progress
from edgekit.models.lock import ModelEntry

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext

__all__ = ["MODES", "Distill", "DistillConfig", "DistillResult", "distill", "register"]


def distill(
    config: DistillConfig, *, progress: ProgressFn = no_progress, settings: Settings | None = None
) -> DistillResult:
    """Run ``config``: write the student as a Hugging Face folder at ``config.out`` (atomically).

    Checkpoints go to ``config.checkpoint_path`` every ``checkpoint_every`` steps and at the end;
    ``resume=True`` continues from there (refused for a checkpoint of another teacher, data or setting).
    """
    require("torch", "transformers", "accelerate", "safetensors")
    from edgekit.compress.distill.train import run

    return run(config, progress, settings or Settings.from_env())


def register(
    result: DistillResult,
    config: DistillConfig,
    *,
    name: str,
    lock_path: Path | None = None,
    description: str = "",
) -> ModelEntry:
    """Add the student to models.lock (format "hf") with its provenance table."""
    from edgekit.compress.distill.train import provenance
    from edgekit.compress.provenance import record

    lock = lock_path or Settings.from_env().lock_path
    return record(
        lock,
        result.out,
        provenance(config, result),
        name=name,
        license=result.license,
        description=description or f"{config.teacher} distilled to {result.layers_student} layers",
    )


class Distill:
    """The pipeline's ``distill`` step: teacher HF folder -> depth-pruned, distilled student HF folder."""

    def run(self, ctx: StepContext) -> None:
        fields: dict[str, Any] = {
            **ctx.step.config,
            **{k: ctx.inputs[k] for k in ("data", "prompts") if k in ctx.inputs},
            "teacher": str(ctx.inputs["teacher"]),
            "out": ctx.out,
            "checkpoint_dir": ctx.out.parent / f"{ctx.step.out.name}.ckpt",
            "threads": ctx.settings.threads,
        }
        distill(DistillConfig(**fields), progress=ctx.progress, settings=ctx.settings)
