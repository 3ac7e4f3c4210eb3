"""The distillation run: teacher -> scored and depth-pruned student -> trained -> HF folder.

Kept free of the CLI: progress goes through a ``(stage, done, total)`` callback, errors are
``EdgekitError``s, and the only side effects are the output folder and the checkpoint file.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekit.compress.distill import checkpoint
from edgekit.compress.distill.config import DistillConfig, DistillResult
from edgekit.compress.distill.data import (
    Batch,
    Example,
    batch_at,
    chat_example,
    collate,
    read_prompts,
    read_text,
    sha256_bytes,
    text_windows,
)
from edgekit.compress.distill.losses import ce_loss, kd_loss, topk_kd_loss
from edgekit.compress.distill.prune import block_influence, choose_layers, decoder_layers, drop_layers
from edgekit.compress.distill.targets import TopKTargets
from edgekit.compress.distill.teacher import resolve_teacher
from edgekit.compress.provenance import Provenance
from edgekit.config import Settings
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, content_sha256

PROVENANCE_FILE = "edgekit-provenance.json"
PROBE_EXAMPLES = 4


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _load_teacher(folder: Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ModelFileError(
            f"{folder}: transformers cannot load this model ({str(e).splitlines()[0][:200]})",
            "Point at a complete Hugging Face causal-LM folder.",
        ) from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def _examples(
    config: DistillConfig, tokenizer: Any, settings: Settings, progress: ProgressFn
) -> tuple[list[Example], str]:
    """The training examples and the sha256 of what they were made from."""
    if config.mode == "logits":
        path = config.data or default_data("train.txt")
        text = read_text(path, "training")
        return text_windows(text, tokenizer, config.seq_len), sha256_bytes(text.encode("utf-8"))
    prompts = read_prompts(config.prompts or default_data("prompts.txt"))
    if not prompts:
        raise InputError("the prompt file holds no prompts", "Put one prompt per line.")
    answers = _answers(config, prompts, settings, progress)
    pairs = json.dumps([[p, a] for p, a in zip(prompts, answers, strict=True)], ensure_ascii=False)
    made = (chat_example(tokenizer, p, a, config.seq_len) for p, a in zip(prompts, answers, strict=True))
    examples = [e for e in made if e is not None]
    if not examples:
        raise InputError(
            f"every prompt fills seq_len {config.seq_len} on its own", "Raise seq_len=N or shorten prompts."
        )
    return examples, sha256_bytes(pairs.encode("utf-8"))


def _answers(
    config: DistillConfig, prompts: list[str], settings: Settings, progress: ProgressFn
) -> list[str]:
    """The generator's answers, kept next to the checkpoint so a resumed run trains on the same ones."""
    from edgekit.compress.distill.generate import answers, open_generator

    cache = config.checkpoint_path.with_name("answers.json")
    if config.resume and cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("prompts") == prompts and saved.get("generator") == config.generator:
            return list(saved["answers"])
    assert config.generator is not None  # checked by DistillConfig
    with open_generator(
        config.generator, remote_model=config.generator_model, threads=config.threads or settings.threads
    ) as gen:
        got = answers(gen, prompts, max_tokens=config.answer_tokens, seed=config.seed, progress=progress)
    record = {"generator": config.generator, "prompts": prompts, "answers": got}
    with atomic_output(cache) as tmp:
        tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    return got


def default_data(name: str) -> Path:
    """A file of the shipped distillation set (recipes/data/distill/)."""
    from importlib import resources

    shipped = resources.files("edgekit") / "_data" / "recipes" / "data" / "distill" / name
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[3] / "recipes" / "data" / "distill" / name


def _objective(
    config: DistillConfig,
    student: nn.Module,
    teacher: nn.Module,
    batch: Batch,
    cached: TopKTargets | None = None,
) -> torch.Tensor:
    logits = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    if config.mode == "sequence":
        return ce_loss(logits, batch.input_ids, batch.loss_mask)
    if cached is not None:
        top, idx, tail = cached.for_batch(batch)
        return topk_kd_loss(
            logits,
            batch.input_ids,
            batch.loss_mask,
            top,
            idx,
            tail,
            temperature=config.temperature,
            alpha=config.alpha,
        )
    with torch.no_grad():
        target = teacher(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits
    return kd_loss(
        logits, target, batch.input_ids, batch.loss_mask, temperature=config.temperature, alpha=config.alpha
    )


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run(config: DistillConfig, progress: ProgressFn, settings: Settings) -> DistillResult:
    with _threads(config.threads):
        return _run(config, progress, settings)


def _run(config: DistillConfig, progress: ProgressFn, settings: Settings) -> DistillResult:
    teacher_ref = resolve_teacher(config.teacher, settings, progress)
    teacher, tokenizer = _load_teacher(teacher_ref.folder)
    n_layers = len(decoder_layers(teacher))
    choose_layers([0.0] * n_layers, config.drop_layers)  # fail on too many layers before any real work
    examples, data_sha = _examples(config, tokenizer, settings, progress)
    fingerprint = config.fingerprint(teacher_ref.sha256, data_sha)
    state = checkpoint.load(config.checkpoint_path, fingerprint) if config.resume else None

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    if state is not None:
        importance = [float(x) for x in state["importance"]]
    else:
        progress("score layers", 0, None)
        windows = [e.input_ids for e in examples[: config.importance_windows]]
        importance = block_influence(teacher, windows)
    dropped = choose_layers(importance, config.drop_layers)
    student = drop_layers(teacher, dropped)
    for p in student.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    probe = collate(examples[:PROBE_EXAMPLES], pad, tuple(range(min(PROBE_EXAMPLES, len(examples)))))
    use_topk = config.mode == "logits" and config.teacher_top_k > 0
    cached = TopKTargets(teacher, examples, config.teacher_top_k, config.temperature) if use_topk else None

    if state is None:
        with torch.no_grad():
            loss_before = float(_objective(config, student, teacher, probe, cached))
        step, position = 0, 0
    else:
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.restore_rng(state)
        loss_before, step, position = float(state["loss_before"]), int(state["step"]), int(state["position"])
    resumed_from = step

    def save() -> None:
        checkpoint.save(
            config.checkpoint_path,
            {
                "fingerprint": fingerprint,
                "step": step,
                "position": position,
                "importance": importance,
                "dropped": list(dropped),
                "loss_before": loss_before,
                "model": student.state_dict(),
                "optimizer": optimizer.state_dict(),
            },
        )

    losses: list[float] = []
    student.train()
    progress("distill", step, config.steps)
    while step < config.steps:
        batch = batch_at(examples, position, config.batch_size, config.seed, pad)
        loss = _objective(config, student, teacher, batch, cached)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        step, position = step + 1, position + config.batch_size
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
        progress("distill", step, config.steps)
    student.eval()
    with torch.no_grad():
        loss_after = float(_objective(config, student, teacher, probe, cached))

    result = DistillResult(
        out=config.out,
        teacher_sha256=teacher_ref.sha256,
        data_sha256=data_sha,
        layers_teacher=n_layers,
        layers_student=n_layers - len(dropped),
        dropped=dropped,
        importance=tuple(importance),
        steps=step,
        resumed_from=resumed_from,
        loss_before=loss_before,
        loss_after=loss_after,
        losses=tuple(losses),
        params_teacher=_params(teacher),
        params_student=_params(student),
        license=teacher_ref.license,
    )
    _write(config, result, student, tokenizer, progress)
    return replace(result, out_sha256=content_sha256(config.out, progress, stage="hash student"))


def provenance(config: DistillConfig, result: DistillResult) -> Provenance:
    settings = {
        **config.settings(),
        "data_sha256": result.data_sha256,
        "dropped_layers": list(result.dropped),
        "layers": f"{result.layers_teacher} -> {result.layers_student}",
        "criterion": "block-influence",
    }
    return Provenance(
        source=config.teacher, source_sha256=result.teacher_sha256, step="distill", settings=settings
    )


def _write(
    config: DistillConfig, result: DistillResult, student: nn.Module, tokenizer: Any, progress: ProgressFn
) -> None:
    progress("write model", 0, None)
    prov = provenance(config, result)
    with atomic_output(config.out, folder=True) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary shared output
        student.save_pretrained(tmp, safe_serialization=True)  # type: ignore[operator]
        tokenizer.save_pretrained(tmp)
        facts = {**prov.to_dict(), "loss_before": result.loss_before, "loss_after": result.loss_after}
        text = json.dumps(facts, indent=2, sort_keys=True) + "\n"
        (tmp / PROVENANCE_FILE).write_text(text, encoding="utf-8")
    progress("write model", 1, 1)
