"""edgekit pull / edgekit models: fetch, list, show, verify, add and remove pinned models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import edgekit
from edgekit.cli.render import err, out, progress_bar
from edgekit.config import Settings
from edgekit.errors import CheckFailedError, EdgekitError, HashMismatchError, InputError
from edgekit.models.edit import add_local

app = typer.Typer(help="List, verify and add models in models.lock.", no_args_is_help=True)


def pull(
    name: Annotated[str | None, typer.Argument(help="models.lock name [default: the lock's default]")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
) -> None:
    """Download a model from its pinned source and verify its sha256."""
    with progress_bar() as progress:
        path = edgekit.pull(name, force=force, progress=progress)
    out.print(str(path), markup=False)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show each model: format, role, size, whether it is cached and verified."""
    rows = edgekit.list_models()
    default = edgekit.lockfile().default
    if as_json:
        data = [
            {
                "name": s.entry.name,
                "format": s.entry.format,
                "role": s.entry.role,
                "size": s.entry.size,
                "license": s.entry.license,
                "cached": s.cached,
                "verified": s.verified,
                "path": str(s.path),
                "default": s.entry.name == default,
            }
            for s in rows
        ]
        out.print(json.dumps(data, indent=2), markup=False)
        return
    names = [s.entry.name + (" (default)" if s.entry.name == default else "") for s in rows]
    cells: dict[str, list[str]] = {
        "format": [s.entry.format for s in rows],
        "role": [s.entry.role for s in rows],
        "size": [f"{s.entry.size / 1e6:,.1f} MB" for s in rows],
        "cached": ["yes" if s.cached else "no" for s in rows],
        "verified": ["yes" if s.verified else "no" for s in rows],
        "license": [s.entry.license for s in rows],
    }
    columns = _fitting(names, cells, out.width)
    table = Table(box=None, pad_edge=False)
    table.add_column("name", no_wrap=True, min_width=max(map(len, names), default=4))
    for col in columns:
        table.add_column(col, no_wrap=True)
    for i, name in enumerate(names):
        table.add_row(name, *(cells[c][i] for c in columns))
    out.print(table, crop=False)


def _fitting(names: list[str], cells: dict[str, list[str]], width: int) -> list[str]:
    """The columns that fit beside whole names, least useful dropped first: a name is never cut."""
    columns = list(cells)

    def needed() -> int:
        widest = [max([len(c), *map(len, cells[c])]) for c in columns]
        return max(map(len, names), default=4) + sum(widest) + 2 * len(columns)  # padding: 2 a column

    for drop in ("license", "role", "verified", "format", "cached", "size"):
        if needed() <= width:
            break
        columns.remove(drop)
    return columns


@app.command("verify")
def verify(
    name: Annotated[str | None, typer.Argument(help="Model to check [default: every cached model]")] = None,
) -> None:
    """Re-hash cached models against models.lock; exit 1 if any differs."""
    names = [name] if name else [s.entry.name for s in edgekit.list_models() if s.cached]
    if not names:
        out.print("no models are cached; run 'edgekit pull' first")
        return
    failed = 0
    with progress_bar() as progress:
        for n in names:
            try:
                edgekit.verify(n, progress=progress)
                out.print(f"ok      {n}", markup=False)
            except EdgekitError as e:
                if name and isinstance(e, HashMismatchError):  # a failed check: exit 1, as for many
                    raise CheckFailedError(e.message, e.hint) from None
                if name:
                    raise
                failed += 1
                err.print(f"FAILED  {n}: {e.message}", markup=False)
    if failed:
        raise CheckFailedError(
            f"{failed} of {len(names)} models failed verification",
            "Run 'edgekit pull NAME --force' for each failed model.",
        )


@app.command("show")
def show(
    name: Annotated[str | None, typer.Argument(help="models.lock name [default: the lock's default]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one entry: format, size, license, source, provenance, path, and for a cached GGUF its
    architecture, context length and chat template."""
    info = edgekit.model_info(name)
    if as_json:
        out.print(json.dumps(info, indent=2), markup=False)
        return
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(key, str(value))
    out.print(table, crop=False)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="models.lock name")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a model's cached copy (pull fetches it again). An entry added or derived here (a local
    file) is also removed from models.lock; the file itself is kept unless it lies in edgekit's cache."""
    info = edgekit.model_info(name)
    unpin = info["source"]["kind"] == "file"
    what = f"the cached copy of {name} ({info['path']})" if not unpin else f"{name} from models.lock"
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"refusing to remove {what} without confirmation", "Pass --yes.")
        typer.confirm(f"Remove {what}?", abort=True)
    removal = edgekit.remove_model(name, unpin=unpin)
    if removal.deleted is not None:
        out.print(f"deleted {removal.deleted} ({removal.freed_bytes / 1e6:,.1f} MB)", markup=False)
    if removal.kept is not None:
        out.print(f"kept {removal.kept} (a file of yours)", markup=False)
    if unpin:
        out.print(f"removed {name} from models.lock", markup=False)
    elif removal.deleted is None:
        out.print(f"{name} was not cached", markup=False)


@app.command("add")
def add(
    path: Annotated[Path, typer.Argument(help="A GGUF file, ONNX folder or Hugging Face folder.")],
    name: Annotated[str, typer.Option("--name", help="Entry name in models.lock.")],
    role: Annotated[str, typer.Option("--role", help="chat, escalation, encoder, ...")] = "chat",
    license_: Annotated[str, typer.Option("--license", help="SPDX license id of the weights.")] = "unknown",
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an entry with the same name.")
    ] = False,
) -> None:
    """Pin a local file in models.lock (sha256 and size computed; used in place)."""
    lock_path = Settings.from_env().lock_path
    with progress_bar() as progress:
        entry = add_local(
            lock_path, path, name=name, role=role, license=license_, replace=replace, progress=progress
        )
    out.print(
        f"added {entry.name} ({entry.format}, sha256 {entry.sha256[:16]}...) to {lock_path}", markup=False
    )
