"""What a distillation run is: one frozen config, validated before any model is loaded.

The config's ``fingerprint`` (sha256 of the fields that shape the weights, plus the teacher's and the
data's sha256) is stored in every checkpoint, so ``--resume`` refuses a checkpoint of another run.
``steps`` and ``checkpoint_every`` are left out of it: resuming with more steps extends a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgekit.errors import InputError

Mode = Literal["logits", "sequence"]
MODES: tuple[str, ...] = ("logits", "sequence")

# Fields that do not change the trained weights (where to write, how often to save, how far to go).
_NOT_FINGERPRINTED = frozenset({"steps", "checkpoint_every", "out", "checkpoint_dir", "resume", "threads"})

_SEQUENCE_ONLY = frozenset({"generator", "generator_model", "answer_tokens"})
_LOGITS_ONLY = frozenset({"temperature", "alpha", "teacher_top_k"})


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run. ``teacher`` is a Hugging Face folder or a models.lock name.

    ``mode="logits"`` trains on ``data`` (a UTF-8 text file) against the teacher's temperature-scaled
    soft targets; ``mode="sequence"`` trains on the answers ``generator`` (a models.lock name, GGUF path
    or ``http(s)://.../v1`` URL) gives to the prompts in ``prompts`` (one per line).
    """

    teacher: str
    drop_layers: int
    out: Path
    mode: Mode = "logits"
    data: Path | None = None  # logits mode: training text (default: recipes/data/distill/train.txt)
    prompts: Path | None = None  # sequence mode: one prompt per line (default: .../prompts.txt)
    generator: str | None = None  # sequence mode: lock name, GGUF path or remote URL
    generator_model: str = "default"  # the model name sent to a remote generator
    answer_tokens: int = 128  # sequence mode: max tokens per generated answer
    steps: int = 200
    seq_len: int = 256
    batch_size: int = 4
    lr: float = 5e-5
    weight_decay: float = 0.0
    temperature: float = 2.0
    alpha: float = 0.0  # weight of the hard-label cross-entropy mixed into the logit loss
    teacher_top_k: int = 0  # 0: full teacher logits every step; K: its top-K per position, computed once
    importance_windows: int = 8  # training windows the block-influence criterion averages over
    seed: int = 0
    checkpoint_every: int = 50
    checkpoint_dir: Path | None = None  # default: <out>.ckpt next to the output
    resume: bool = False
    threads: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (self.drop_layers >= 0, f"--drop-layers {self.drop_layers} is negative", "Give 0 or more."),
            (self.mode in MODES, f"unknown mode {self.mode!r}", f"Use one of: {', '.join(MODES)}."),
            (self.steps >= 1, f"--steps {self.steps} must be at least 1", "Give 1 or more steps."),
            (self.seq_len >= 8, f"--seq-len {self.seq_len} is below 8 tokens", "Use 8 or more."),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1", "Use 1 or more."),
            (self.lr > 0, f"--lr {self.lr} must be positive", "Try 5e-5."),
            (self.temperature > 0, f"--temperature {self.temperature} must be positive", "Try 2.0."),
            (0 <= self.alpha <= 1, f"--alpha {self.alpha} is outside [0, 1]", "Use 0 (pure KD) to 1."),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1", "Use 1 or more steps."),
            (self.answer_tokens >= 1, "--answer-tokens must be at least 1", "Use 1 or more."),
            (self.teacher_top_k >= 0, "--teacher-top-k must be 0 or more", "Use 0 (full logits) or e.g. 64."),
            (self.importance_windows >= 1, "importance_windows must be at least 1", "Use 1 or more."),
        ]
        for ok, message, hint in checks:
            if not ok:
                raise InputError(message, hint)
        if self.mode == "sequence" and not self.generator:
            raise InputError(
                "sequence mode needs a generator",
                "Pass generator=NAME with a models.lock name, a .gguf path or an http(s)://.../v1 URL.",
            )

    @property
    def checkpoint_path(self) -> Path:
        folder = self.checkpoint_dir or self.out.with_name(self.out.name + ".ckpt")
        return folder / "checkpoint.pt"

    def settings(self) -> dict[str, Any]:
        """The fields that shape the weights, as plain JSON-able values (for provenance and fingerprints)."""
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        for key in _NOT_FINGERPRINTED | {"teacher", "data", "prompts"}:  # their content hashes stand for them
            data.pop(key, None)
        unused = _SEQUENCE_ONLY if self.mode == "logits" else _LOGITS_ONLY
        return {k: v for k, v in data.items() if v is not None and k not in unused}

    def fingerprint(self, teacher_sha256: str, data_sha256: str) -> str:
        blob = json.dumps(
            {"settings": self.settings(), "teacher": teacher_sha256, "data": data_sha256}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class DistillResult:
    """What a run produced. Losses are the training objective on a fixed probe batch (the first few
    training examples) for the pruned student before training and for the final student."""

    out: Path
    teacher_sha256: str
    data_sha256: str
    layers_teacher: int
    layers_student: int
    dropped: tuple[int, ...]  # teacher layer indices removed
    importance: tuple[float, ...]  # block influence per teacher layer (1 - cosine of input and output)
    steps: int
    resumed_from: int  # 0 when the run started fresh
    loss_before: float
    loss_after: float
    losses: tuple[float, ...] = field(default=())  # training loss per step run in this call
    params_teacher: int = 0
    params_student: int = 0
    license: str = "unknown"  # the teacher's, when it came from models.lock
    out_sha256: str = ""  # the output folder's manifest hash (as models.lock records folders)
