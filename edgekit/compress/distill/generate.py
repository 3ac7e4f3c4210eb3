"""The teacher as a generator (sequence-level distillation): its answers become the training targets.

A generator is any edgekit ``Model``: a models.lock name or GGUF path (the local runtime) or an
OpenAI-compatible endpoint (``http(s)://.../v1``, edgekit's remote backend). Answers are greedy
(temperature 0) with a fixed seed, so the same generator gives the same targets.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgekit.api import Model, load, remote
from edgekit.errors import InputError
from edgekit.files import ProgressFn


def open_generator(spec: str, *, remote_model: str = "default", threads: int | None = None) -> Model:
    if spec.startswith(("http://", "https://")):
        return remote(spec, remote_model)
    return load(spec, threads=threads)


def answers(
    generator: Model,
    prompts: Sequence[str],
    *,
    max_tokens: int,
    seed: int,
    progress: ProgressFn,
) -> list[str]:
    """The generator's answer to each prompt (greedy); empty answers are an error naming the prompt."""
    out: list[str] = []
    for i, prompt in enumerate(prompts):
        progress("generate answers", i, len(prompts))
        reply = generator.chat(prompt, max_tokens=max_tokens, temperature=0.0, seed=seed)
        if not reply.text.strip():
            raise InputError(
                f"the generator {generator.name} gave an empty answer to prompt {i + 1} ({prompt[:60]!r})",
                "Use another generator, or raise answer_tokens=N.",
            )
        out.append(reply.text)
    progress("generate answers", len(prompts), len(prompts))
    return out
