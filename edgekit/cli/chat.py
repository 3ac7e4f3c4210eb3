"""edgekit chat: an interactive REPL over ChatSession, scriptable when stdin is not a terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import edgekit
from edgekit.cli.render import err, error_line, out, progress_bar
from edgekit.cli.run import ModelOpt
from edgekit.errors import EdgekitError, EncodingError
from edgekit.runtime.session import ChatSession

HELP = """commands:
  /help            this help
  /reset           forget the conversation
  /system [TEXT]   set the system prompt (no text: clear it)
  /model NAME      switch to another model (history is kept)
  /schema FILE     answer with JSON matching this JSON schema (/schema off: free text again)
  /exit            leave (also /quit or Ctrl-D)
Ctrl-C stops the current answer; the session goes on."""


def chat(
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens per answer.")] = 512,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 for greedy decoding.")] = 0.7,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed.")] = None,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens.")] = None,
) -> None:
    """Chat with a local model. Reads one message per line when stdin is not a terminal."""
    interactive = sys.stdin.isatty()
    session = ChatSession(_load(model, n_ctx), system)
    params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if interactive:
        err.print(f"[dim]edgekit chat on {session.model.name} - /help for commands, Ctrl-D to leave[/dim]")
    try:
        while True:
            line = _read_line(interactive)
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if _command(line, session, n_ctx, params) == "exit":
                    break
                continue
            _answer(session, line, params)
    finally:
        session.model.close()


def _load(model: str | None, n_ctx: int | None) -> edgekit.Model:
    with progress_bar() as progress:
        return edgekit.load(model, n_ctx=n_ctx, progress=progress)


def _read_line(interactive: bool) -> str | None:
    if interactive:
        try:
            return input(">>> ")
        except EOFError:
            return None
        except KeyboardInterrupt:
            out.print()
            return ""
    raw = sys.stdin.buffer.readline()
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        err.print(error_line(EncodingError("this line is not valid UTF-8; skipped")), markup=False)
        return ""


def _answer(session: ChatSession, text: str, params: dict[str, Any]) -> None:
    try:
        stream = session.send(text, **params)
        try:
            for chunk in stream:
                out.file.write(chunk.text)
                out.file.flush()
        except KeyboardInterrupt:
            stream.close()
            out.file.write(" [stopped]")
        out.file.write("\n")
        out.file.flush()
    except EdgekitError as e:  # one bad turn must not end the session
        err.print(error_line(e), markup=False)


def _command(line: str, session: ChatSession, n_ctx: int | None, params: dict[str, Any]) -> str | None:
    cmd, _, arg = line.partition(" ")
    arg = arg.strip()
    if cmd in ("/exit", "/quit"):
        return "exit"
    if cmd == "/help":
        out.print(HELP, markup=False)
    elif cmd == "/reset":
        session.reset()
        out.print("(conversation cleared)")
    elif cmd == "/system":
        session.system = arg or None
        out.print("(system prompt set)" if arg else "(system prompt cleared)")
    elif cmd == "/model":
        if not arg:
            out.print(f"(model: {session.model.name})", markup=False)
            return None
        try:
            new = _load(arg, n_ctx)
        except EdgekitError as e:
            err.print(error_line(e), markup=False)
            return None
        session.model.close()
        session.model = new
        out.print(f"(switched to {new.name})", markup=False)
    elif cmd == "/schema":
        _set_schema(arg, params)
    else:
        err.print(f"unknown command {cmd}; /help lists them", markup=False)
    return None


def _set_schema(arg: str, params: dict[str, Any]) -> None:
    if not arg:
        current = params.get("schema")
        out.print(f"(schema: {current.name if current is not None else 'off'})", markup=False)
    elif arg == "off":
        params.pop("schema", None)
        out.print("(schema off)")
    else:
        from edgekit.cli.run import _schema

        try:
            params["schema"] = _schema(Path(arg).expanduser(), strict=False)
        except EdgekitError as e:
            err.print(error_line(e), markup=False)
            return
        out.print(f"(answers now follow the schema {params['schema'].name})", markup=False)
