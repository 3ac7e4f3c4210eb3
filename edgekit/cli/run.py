"""edgekit run: one prompt in, one answer out."""

from __future__ import annotations

import json
from typing import Annotated

import typer

import edgekit
from edgekit.cli.render import out, progress_bar, read_text_arg
from edgekit.runtime.types import collect

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="models.lock name or a GGUF/ONNX path [default: the lock's default]"),
]


def run(
    prompt: Annotated[str, typer.Argument(help="The prompt, or '-' to read it from stdin.")],
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 for greedy decoding.")] = 0.7,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed for repeatable output.")] = None,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer with metadata as JSON.")] = False,
) -> None:
    """Answer one prompt on the local model and print it (streamed as it is generated)."""
    text = read_text_arg(prompt)
    with progress_bar() as progress:
        m = edgekit.load(model, n_ctx=n_ctx, progress=progress)
    with m:
        chunks = m.chat(
            text, stream=True, system=system, max_tokens=max_tokens, temperature=temperature, seed=seed
        )
        if as_json:
            done = collect(chunks, model=m.name, backend=m.backend.name)
            out.print(json.dumps(done.to_dict(), ensure_ascii=False, indent=2), markup=False)
            return
        for chunk in chunks:
            out.file.write(chunk.text)
            out.file.flush()
        out.file.write("\n")
