"""Depth pruning: score each decoder block, drop the least important ones, keep every other weight.

The criterion is ShortGPT's block influence (Men et al., 2024, "ShortGPT: Layers in Large Language
Models are More Redundant Than You Expect"): for block i with input hidden states x and output y,
``BI_i = 1 - mean_t cos(x_t, y_t)`` over the tokens of the training text. A block whose output points
where its input already pointed changes little of the residual stream, so removing it costs least.
Blocks are scored once, on the teacher, and the ``n`` lowest are removed together.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgekit.errors import InputError


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a Hugging Face causal LM (``model.model.layers`` for llama/qwen2)."""
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(
            f"cannot find the decoder layers of {type(model).__name__}",
            "Depth pruning supports decoder-only models with model.layers (llama, qwen2, mistral, ...).",
        )
    return layers


@torch.no_grad()
def block_influence(model: nn.Module, windows: Sequence[torch.Tensor]) -> list[float]:
    """ShortGPT block influence of every decoder block, averaged over the tokens of ``windows``."""
    layers = decoder_layers(model)
    sums = [0.0] * len(layers)
    count = 0

    def hook(index: int) -> Any:
        def record(_module: nn.Module, args: tuple[torch.Tensor, ...], output: object) -> None:
            out = output[0] if isinstance(output, tuple) else output
            assert isinstance(out, torch.Tensor)
            cos = nn.functional.cosine_similarity(args[0].float(), out.float(), dim=-1)
            sums[index] += float((1.0 - cos).sum())

        return record

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        model.eval()
        for ids in windows:
            model(input_ids=ids.unsqueeze(0), use_cache=False)
            count += int(ids.numel())
    finally:
        for h in handles:
            h.remove()
    return [s / max(count, 1) for s in sums]


def choose_layers(importance: Sequence[float], n: int) -> tuple[int, ...]:
    """Indices of the ``n`` least important blocks (ties go to the later block), sorted."""
    total = len(importance)
    if n >= total:
        raise InputError(
            f"drop_layers={n} would remove all {total} layers of the teacher",
            f"Drop at most {total - 1} layers.",
        )
    order = sorted(range(total), key=lambda i: (importance[i], -i))
    return tuple(sorted(order[:n]))


def drop_layers(teacher: nn.Module, dropped: Sequence[int]) -> nn.Module:
    """A copy of ``teacher`` without the blocks in ``dropped``; ``config.num_hidden_layers`` updated."""
    student = copy.deepcopy(teacher)
    layers = decoder_layers(student)
    keep = [i for i in range(len(layers)) if i not in set(dropped)]
    kept = nn.ModuleList(layers[i] for i in keep)
    for new_index, layer in enumerate(kept):
        for part in (layer, getattr(layer, "self_attn", None)):
            if part is not None and hasattr(part, "layer_idx"):
                part.layer_idx = new_index  # the KV cache is indexed by position in the stack
    base: Any = student.model
    base.layers = kept
    config: Any = student.config
    config.num_hidden_layers = len(keep)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(layers):
        config.layer_types = [layer_types[i] for i in keep]  # per-layer attention kinds (qwen2, gemma)
    return student
