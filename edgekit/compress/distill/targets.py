"""Teacher soft targets cached as top-k log-probabilities per position, to bound memory and compute.

Full teacher logits are vocabulary-sized per token (49,152 floats for SmolLM2), so they are recomputed
every step by default. With ``teacher_top_k = K`` the teacher runs once per training example instead of
once per epoch, and keeps K log-probabilities, their token ids and the log of the remaining mass per
position (about 8 bytes x K per token). Each example is scored on its own, never padded into a batch, so
the cached targets do not depend on which batch an example first appeared in (resume stays exact).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from edgekit.compress.distill.data import Batch, Example


class TopKTargets:
    def __init__(self, teacher: nn.Module, examples: Sequence[Example], k: int, temperature: float) -> None:
        self.teacher, self.examples, self.k, self.temperature = teacher, examples, k, temperature
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def _example(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if i not in self._cache:
            ids = self.examples[i].input_ids.unsqueeze(0)
            logits = self.teacher(input_ids=ids, use_cache=False).logits[0, :-1].float()
            logp = F.log_softmax(logits / self.temperature, dim=-1)
            top, idx = logp.topk(min(self.k, logp.shape[-1]), dim=-1)
            tail = torch.log1p(-top.exp().sum(-1).clamp(max=1 - 1e-6))
            self._cache[i] = (top, idx.to(torch.int32), tail)
        return self._cache[i]

    def for_batch(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets for the batch's target positions, in the order ``losses._shifted`` selects them."""
        if len(batch.index) != batch.input_ids.shape[0]:
            raise ValueError("the batch does not say which examples it holds")
        parts = []
        for row, i in enumerate(batch.index):
            top, idx, tail = self._example(i)
            selected = batch.loss_mask[row, 1 : 1 + top.shape[0]]
            parts.append((top[selected], idx[selected], tail[selected]))
        return (
            torch.cat([p[0] for p in parts]),
            torch.cat([p[1] for p in parts]),
            torch.cat([p[2] for p in parts]),
        )
