"""Distillation objectives over the target positions of a batch.

Logit distillation (Hinton et al., 2015): ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` per
target position, averaged; the ``T^2`` keeps the gradient scale independent of the temperature. An
``alpha`` share of the ordinary next-token cross-entropy on the real tokens can be mixed in.
Sequence-level distillation (Kim and Rush, 2016) is plain cross-entropy on the teacher's answers.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _shifted(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Logits at positions that predict a target, and those targets: (N, V) and (N,)."""
    target_mask = mask[:, 1:]
    return logits[:, :-1][target_mask], ids[:, 1:][target_mask]


def kd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Temperature-scaled KL to the teacher's soft targets, mixed with ``alpha`` hard-label CE."""
    s, targets = _shifted(student, ids, mask)
    t, _ = _shifted(teacher, ids, mask)
    log_p_teacher = F.log_softmax(t.float() / temperature, dim=-1)
    log_p_student = F.log_softmax(s.float() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    loss = (temperature**2) * kl
    if alpha > 0:
        loss = (1 - alpha) * loss + alpha * F.cross_entropy(s.float(), targets)
    return loss


def topk_kd_loss(
    student: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    top_logp: torch.Tensor,
    top_idx: torch.Tensor,
    tail_logp: torch.Tensor,
    *,
    temperature: float,
    alpha: float = 0.0,
) -> torch.Tensor:
    """``kd_loss`` against cached teacher targets: its top-k log-probabilities at ``temperature`` per
    target position (``top_logp``, ``top_idx``: (N, k)) and the log of the rest's mass (``tail_logp``: (N,)).

    The student's distribution is folded the same way (the teacher's top-k tokens plus one tail bucket),
    so this is a lower bound of the full KL that equals it when k covers the vocabulary.
    """
    s, targets = _shifted(student, ids, mask)
    log_q = F.log_softmax(s.float() / temperature, dim=-1)
    q_top = log_q.gather(-1, top_idx.long())
    q_tail = torch.log1p(-q_top.exp().sum(-1).clamp(max=1 - 1e-6))
    kl = (top_logp.exp() * (top_logp - q_top)).sum(-1) + tail_logp.exp() * (tail_logp - q_tail)
    loss = (temperature**2) * kl.mean()
    if alpha > 0:
        loss = (1 - alpha) * loss + alpha * F.cross_entropy(s.float(), targets)
    return loss


def ce_loss(student: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the target positions (the answer tokens in sequence mode)."""
    s, targets = _shifted(student, ids, mask)
    return F.cross_entropy(s.float(), targets)


@torch.no_grad()
def mean_kld(student: torch.Tensor, teacher: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    """KL(teacher || student) at temperature 1, in nats per target position (for reports)."""
    return float(kd_loss(student, teacher, ids, mask, temperature=1.0))
