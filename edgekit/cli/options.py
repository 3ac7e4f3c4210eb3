"""Options that several commands share, and the one way they turn into an ``edgekit.Assistant``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import edgekit
from edgekit.cli.render import err, progress_bar
from edgekit.errors import InputError

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="models.lock name or a GGUF/ONNX path [default: the lock's default]"),
]
CascadeOpt = Annotated[
    bool, typer.Option("--cascade", help="Answer through the cascade (local first, remote on evidence).")
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy", help="Cascade policy TOML or shipped name (implies --cascade) [default: default]."
    ),
]
SafetyOpt = Annotated[
    bool,
    typer.Option("--safety", help="Screen requests and filter answers with the on-device safety policy."),
]
SafetyPolicyOpt = Annotated[
    Path | None, typer.Option("--safety-policy", help="Safety policy TOML (implies --safety).")
]
NCtxOpt = Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens.")]


def open_assistant(
    model: str | None,
    cascade: bool,
    policy: Path | None,
    safety: bool,
    safety_policy: Path | None,
    n_ctx: int | None,
    *,
    copies: int = 1,
    notice: str = "note",
    shadow: Path | None = None,
) -> edgekit.Assistant:
    """The assistant the options describe, loaded with progress bars; what a user must know before the
    first request (no remote configured) is said once on stderr."""
    if shadow and model:
        raise InputError("--shadow needs the cascade", "Drop --model; the policies name the models.")
    if (cascade or policy) and model:
        raise InputError("--model and --cascade/--policy exclude each other", "The policy names the models.")
    with progress_bar() as progress:
        assistant = edgekit.Assistant.open(
            policy,
            model=model,
            cascade=bool(cascade or policy),
            safety=safety_policy or safety,
            copies=copies,
            n_ctx=n_ctx,
            progress=progress,
            shadow=shadow,
        )
    for line in assistant.notices():
        err.print(f"{notice}: {line}", markup=False)
    return assistant
