"""Training examples: token windows of a text (logit distillation) or chat prompt+answer pairs
(sequence-level distillation), and a seeded order that a checkpoint can resume mid-epoch.

An example is ``(input_ids, loss_mask)``: ``loss_mask[t]`` says whether token t is a training target
(every token of a text window; only the answer tokens of a chat example).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgekit.errors import EncodingError, InputError


@dataclass(frozen=True)
class Example:
    input_ids: torch.Tensor  # (T,) int64
    loss_mask: torch.Tensor  # (T,) bool


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    loss_mask: torch.Tensor  # (B, T): token t is a target (predicted from position t - 1)
    index: tuple[int, ...] = ()  # which examples, by position in the training set


def read_text(path: Path, what: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file", "Check the path.") from None
    except UnicodeDecodeError:
        raise EncodingError(f"{path}: the {what} file is not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} file ({e.strerror})", "Check the path.") from None
    if not text.strip():
        raise InputError(f"{path}: the {what} file is empty", f"Put some {what} text in it.")
    return text


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text_windows(text: str, tokenizer: Any, seq_len: int) -> list[Example]:
    """Documents (blank-line separated) tokenized, joined with EOS, cut into ``seq_len`` windows.

    A last window shorter than a quarter of ``seq_len`` is dropped (unless it is the only one).
    """
    docs = [d.strip() for d in text.split("\n\n") if d.strip()]
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc, add_special_tokens=False).input_ids)
        if tokenizer.eos_token_id is not None:
            ids.append(int(tokenizer.eos_token_id))
    windows = [ids[i : i + seq_len] for i in range(0, len(ids), seq_len)]
    windows = [w for j, w in enumerate(windows) if len(w) >= max(2, seq_len // 4) or (j == 0 and len(w) >= 2)]
    if not windows:
        raise InputError("the training text is too short (fewer than 2 tokens)", "Give more text.")
    return [Example(torch.tensor(w), torch.ones(len(w), dtype=torch.bool)) for w in windows]


def chat_example(tokenizer: Any, prompt: str, answer: str, seq_len: int) -> Example | None:
    """Prompt + answer through the chat template; targets are the answer's tokens (and its end token).

    ``None`` when the prompt alone fills ``seq_len``.
    """
    user = [{"role": "user", "content": prompt}]
    head = list(tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True))
    full = list(
        tokenizer.apply_chat_template([*user, {"role": "assistant", "content": answer}], tokenize=True)
    )
    if full[: len(head)] != head:  # a template that rewrites the prompt part: append the answer by hand
        full = head + tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    full = full[:seq_len]
    if len(full) <= len(head):
        return None
    mask = torch.zeros(len(full), dtype=torch.bool)
    mask[len(head) :] = True
    return Example(torch.tensor(full), mask)


def read_prompts(path: Path) -> list[str]:
    prompts = [line.strip() for line in read_text(path, "prompt").splitlines() if line.strip()]
    return [p for p in prompts if not p.startswith("#")]


def order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a permutation fixed by the seed and the epoch number."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return [int(i) for i in torch.randperm(n, generator=gen)]


def batch_at(examples: Sequence[Example], position: int, size: int, seed: int, pad_id: int) -> Batch:
    """The batch that starts at ``position`` examples into the seeded stream (epochs reshuffled)."""
    n = len(examples)
    index = []
    for p in range(position, position + size):
        epoch, i = divmod(p, n)
        index.append(order(n, seed, epoch)[i])
    return collate([examples[i] for i in index], pad_id, tuple(index))


def collate(examples: Sequence[Example], pad_id: int, index: tuple[int, ...] = ()) -> Batch:
    width = max(int(e.input_ids.numel()) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, e in enumerate(examples):
        t = int(e.input_ids.numel())
        ids[row, :t] = e.input_ids
        attn[row, :t] = 1
        mask[row, :t] = e.loss_mask
    mask[:, 0] = False  # the first token has no position to be predicted from
    return Batch(ids, attn, mask, index)
