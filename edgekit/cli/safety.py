"""edgekit safety check: run the safety policy on a text and show what each filter found."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgekit.cli.render import err, out, read_text_arg
from edgekit.errors import InputError
from edgekit.safety.taxonomy import LAYERS

safety_app = typer.Typer(help="Check text against the on-device safety policy.", no_args_is_help=True)


@safety_app.command("check")
def check(
    text: Annotated[str, typer.Argument(help="The text, or '-' to read it from stdin.")],
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Safety policy TOML [default: the shipped one]")
    ] = None,
    layer: Annotated[str, typer.Option("--layer", help=f"Enforcement point: {', '.join(LAYERS)}.")] = "input",
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Filter TEXT as the policy would at one enforcement point; exit 1 when it is blocked."""
    from edgekit.safety.guard import Guard
    from edgekit.safety.policy import load_policy

    if layer not in LAYERS:
        raise InputError(f"--layer {layer!r} is not one of {', '.join(LAYERS)}")
    value = read_text_arg(text)
    guard = Guard(load_policy(policy))
    if "classifier" in guard.filters:
        # The first run builds the int8 encoder (seconds); stderr says so when it is a terminal.
        with (
            err.status("loading the harmful-content classifier", spinner="dots")
            if err.is_terminal
            else (contextlib.nullcontext())
        ):
            guard.warm()
    decision = guard.check(value, layer)
    if as_json:
        out.print(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False), markup=False)
    else:
        table = Table("category", "action", "filter", "spans", "reason", box=None)
        for v in decision.verdicts:
            spans = ", ".join(f"{s.start}-{s.end}" for s in v.spans)
            table.add_row(v.category, v.action, v.filter, spans, v.reason)
        if decision.verdicts:
            out.print(table)
        out.print(f"action: {decision.action}", markup=False)
        if decision.text != value:
            out.print(f"text: {decision.text}", markup=False)
    if decision.blocked:
        raise typer.Exit(1)
