"""edgekit distill: a depth-pruned student of a teacher, trained by logit or sequence-level distillation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgekit.cli.render import out, progress_bar
from edgekit.compress.distill import DistillConfig, distill, register
from edgekit.compress.source import output_stem
from edgekit.config import Settings


def distill_(
    teacher: Annotated[str, typer.Argument(help="Hugging Face folder, .gguf file or models.lock name.")],
    drop_layers: Annotated[int, typer.Option("--drop-layers", help="Decoder layers to remove.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output HF folder [default: ./<teacher>-distilled].")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="logits (KL to soft targets) or sequence (generator answers).")
    ] = "logits",
    data: Annotated[
        Path | None, typer.Option("--data", help="Training text [default: recipes/data/distill/train.txt].")
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option("--prompts", help="Sequence mode: one prompt per line [default: the shipped set]."),
    ] = None,
    generator: Annotated[
        str | None,
        typer.Option("--generator", help="Sequence mode: models.lock name, .gguf or http(s)://.../v1 URL."),
    ] = None,
    generator_model: Annotated[
        str, typer.Option("--generator-model", help="Model name sent to a remote generator.")
    ] = "default",
    answer_tokens: Annotated[
        int, typer.Option("--answer-tokens", help="Sequence mode: max tokens per answer.")
    ] = 128,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 200,
    seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per training example.")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 4,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate.")] = 5e-5,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature (logits).")] = 2.0,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Share of hard-label cross-entropy mixed in (logits).")
    ] = 0.0,
    teacher_top_k: Annotated[
        int,
        typer.Option(
            "--teacher-top-k", help="Logits mode: keep the teacher's top-K per position (0: full logits)."
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for data order and initialization.")] = 0,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Save a checkpoint every N steps.")
    ] = 50,
    checkpoint_dir: Annotated[
        Path | None, typer.Option("--checkpoint-dir", help="Checkpoint folder [default: <out>.ckpt].")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="models.lock entry name [default: the output folder's].")
    ] = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not add the student to models.lock.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Prune TEACHER's least important layers and train the student to imitate it; write an HF folder."""
    settings = Settings.from_env()
    config = DistillConfig(
        teacher=teacher,
        drop_layers=drop_layers,
        out=out_dir or Path(f"{output_stem(teacher)}-distilled"),
        mode=mode,  # type: ignore[arg-type]  # checked by DistillConfig
        data=data,
        prompts=prompts,
        generator=generator,
        generator_model=generator_model,
        answer_tokens=answer_tokens,
        steps=steps,
        seq_len=seq_len,
        batch_size=batch_size,
        lr=lr,
        temperature=temperature,
        alpha=alpha,
        teacher_top_k=teacher_top_k,
        seed=seed,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        threads=settings.threads,
    )
    with progress_bar() as progress:
        result = distill(config, progress=progress, settings=settings)
    entry = None if no_record else register(result, config, name=name or output_stem(str(result.out)))
    if as_json:
        data_out = {
            "out": str(result.out),
            "lock_name": entry.name if entry else None,
            "layers": [result.layers_teacher, result.layers_student],
            "dropped": list(result.dropped),
            "params": [result.params_teacher, result.params_student],
            "steps": result.steps,
            "resumed_from": result.resumed_from,
            "loss_before": result.loss_before,
            "loss_after": result.loss_after,
            "teacher_sha256": result.teacher_sha256,
            "data_sha256": result.data_sha256,
            "out_sha256": result.out_sha256,
        }
        out.print(json.dumps(data_out, indent=2), markup=False)
        return
    dropped = ", ".join(str(i) for i in result.dropped) or "none"
    out.print(
        f"{result.out}: {result.layers_student} of {result.layers_teacher} layers (dropped {dropped}), "
        f"{result.params_student / 1e6:.1f}M of {result.params_teacher / 1e6:.1f}M parameters",
        markup=False,
    )
    out.print(
        f"{config.mode} loss on the probe batch: {result.loss_before:.4f} before, {result.loss_after:.4f} "
        f"after {result.steps} step{'s' if result.steps != 1 else ''}"
        + (f" (resumed at {result.resumed_from})" if result.resumed_from else ""),
        markup=False,
    )
    if entry:
        out.print(f"models.lock: {entry.name} (format hf, sha256 {entry.sha256[:16]}...)", markup=False)
