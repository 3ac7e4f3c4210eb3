"""edgekit run: one prompt in, one answer out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

import edgekit
from edgekit.assistant import Answer, AnswerStream
from edgekit.cli.options import (
    CascadeOpt,
    ModelOpt,
    NCtxOpt,
    PolicyOpt,
    SafetyOpt,
    SafetyPolicyOpt,
    open_assistant,
)
from edgekit.cli.render import err, out, read_text_arg


def run(
    prompt: Annotated[str, typer.Argument(help="The prompt, or '-' to read it from stdin.")],
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 for greedy decoding.")] = 0.7,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed for repeatable output.")] = None,
    n_ctx: NCtxOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer with metadata as JSON.")] = False,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="JSON schema file: the answer is JSON that matches it.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="With --schema: refuse keywords the grammar cannot enforce.")
    ] = False,
    cascade: CascadeOpt = False,
    policy: PolicyOpt = None,
    safety: SafetyOpt = False,
    safety_policy: SafetyPolicyOpt = None,
) -> None:
    """Answer one prompt and print it (streamed as it is generated; a cascade decides first)."""
    text = read_text_arg(prompt)
    compiled = schema_option(schema, strict) if schema is not None else None
    assistant = open_assistant(model, cascade, policy, safety, safety_policy, n_ctx)
    params: dict[str, Any] = {
        "system": system,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
    }
    with assistant:
        streamed = assistant.router is None and compiled is None and not as_json
        reply = assistant.chat(text, schema=compiled, stream=streamed, **params)
        if isinstance(reply, AnswerStream):
            for chunk in reply:
                out.file.write(chunk.text)
                out.file.flush()
            out.file.write("\n")
            answer = reply.answer
        else:
            answer = reply
    assert answer is not None
    if as_json:
        out.print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2), markup=False)
        return
    if not streamed:
        out.print(answer.text, markup=False)
    show_route(answer, assistant)


def show_route(answer: Answer, assistant: edgekit.Assistant) -> None:
    """A cascade's route on stderr; an answer a gate wanted a larger model to give, marked on stdout too,
    so it is never mistaken for a vetted one; a withheld answer says so."""
    if answer.blocked:
        err.print("[withheld by the safety policy]", markup=False)
    if assistant.router is None:
        return
    err.print(answer.status_line(), markup=False)
    if answer.unvetted:
        gate = (answer.escalation_reason or "").split(": ")[0]
        out.print(f"[unvetted: {gate} wanted a larger model; {answer.degraded_reason}]", markup=False)


def schema_option(path: Path, strict: bool) -> edgekit.CompiledSchema:
    """A --schema file, compiled; keywords the grammar cannot enforce are named on stderr."""
    from edgekit.schema import compile_schema, load_schema_file

    compiled = compile_schema(load_schema_file(path), strict=strict, name=path.stem)
    if compiled.validated_after:
        names = ", ".join(str(u) for u in compiled.validated_after[:5])
        err.print(f"note: checked only after generation (the grammar cannot enforce): {names}", markup=False)
    if compiled.ignored:
        names = ", ".join(str(u) for u in compiled.ignored[:5])
        err.print(f"note: unknown keywords, ignored as draft 2020-12 says: {names}", markup=False)
    return compiled
