"""edgekit run: one prompt in, one answer out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

import edgekit
from edgekit.cli.render import err, out, progress_bar, read_text_arg
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
    schema: Annotated[
        Path | None, typer.Option("--schema", help="JSON schema file: the answer is JSON that matches it.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="With --schema: refuse keywords the grammar cannot enforce.")
    ] = False,
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Answer through the cascade (local first, remote on evidence).")
    ] = False,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="With --cascade: policy TOML or shipped name [default: default]."),
    ] = None,
) -> None:
    """Answer one prompt on the local model and print it (streamed as it is generated)."""
    text = read_text_arg(prompt)
    compiled = _schema(schema, strict) if schema is not None else None
    if cascade or policy is not None:
        _run_cascade(text, policy, compiled, system, max_tokens, temperature, seed, as_json)
        return
    with progress_bar() as progress:
        m = edgekit.load(model, n_ctx=n_ctx, progress=progress)
    with m:
        if compiled is not None:
            result = m.generate_json(
                text, compiled, system=system, max_tokens=max_tokens, temperature=temperature, seed=seed
            )
            if as_json:
                doc = {**result.completion.to_dict(), "value": result.value, "attempts": result.attempts}
                out.print(
                    json.dumps({**doc, "method": result.method}, ensure_ascii=False, indent=2), markup=False
                )
            else:
                out.print(result.text, markup=False)
            return
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


def _run_cascade(
    text: str,
    policy: Path | None,
    compiled: edgekit.CompiledSchema | None,
    system: str | None,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    as_json: bool,
) -> None:
    """The answer the cascade accepts (held until the decision: nothing shown is withdrawn), then its
    route on stderr; a degraded answer says why."""
    from edgekit.cascade.router import load_router

    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if compiled is not None:
        params["schema"] = compiled
    with load_router(policy) as router:
        result = router.route(text, system=system, **params)
    route = {
        "route": result.route,
        "escalation_reason": result.escalation_reason,
        "degraded_reason": result.degraded_reason,
    }
    if as_json:
        doc = {**result.completion.to_dict(), "edgekit_route": route}
        out.print(json.dumps(doc, ensure_ascii=False, indent=2), markup=False)
        return
    out.print(result.completion.text, markup=False)
    why = result.degraded_reason or result.escalation_reason
    err.print(f"[{result.route}]" + (f" {why}" if why else ""), markup=False)


def _schema(path: Path, strict: bool) -> edgekit.CompiledSchema:
    from edgekit.schema import compile_schema, load_schema_file

    compiled = compile_schema(load_schema_file(path), strict=strict, name=path.stem)
    if compiled.validated_after:
        names = ", ".join(str(u) for u in compiled.validated_after[:5])
        err.print(f"note: checked only after generation (the grammar cannot enforce): {names}", markup=False)
    if compiled.ignored:
        names = ", ".join(str(u) for u in compiled.ignored[:5])
        err.print(f"note: unknown keywords, ignored as draft 2020-12 says: {names}", markup=False)
    return compiled
