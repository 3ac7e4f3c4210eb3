"""edgekit chat: an interactive REPL over a ChatSession on an Assistant, scriptable when stdin is not a
terminal. Line editing and history come from readline where the platform has it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import typer

import edgekit
from edgekit.assistant.session import ChatSession
from edgekit.cli.errors import error_line
from edgekit.cli.options import (
    CascadeOpt,
    ModelOpt,
    NCtxOpt,
    PolicyOpt,
    SafetyOpt,
    SafetyPolicyOpt,
    open_assistant,
)
from edgekit.cli.render import err, out, progress_bar
from edgekit.cli.run import schema_option, show_route
from edgekit.errors import EdgekitError, EncodingError

HELP = """commands:
  /help            this help
  /reset           forget the conversation
  /system [TEXT]   set the system prompt (no text: show it; /system off: clear it)
  /show            the model, system prompt, parameters and schema in use
  /model NAME      switch to another model (history is kept; not with --policy)
  /schema FILE     answer with JSON matching this JSON schema (/schema off: free text again)
  /route           how the last answer was routed: gates, rejected tiers, safety findings
  /exit            leave (also /quit or Ctrl-D)
A line ending in \\ continues on the next line; \"\"\" opens and closes a block of lines.
Ctrl-C stops the current answer; the session goes on."""


def chat(
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens per answer.")] = 512,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="0 for greedy decoding.")] = 0.7,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed.")] = None,
    n_ctx: NCtxOpt = None,
    cascade: CascadeOpt = False,
    policy: PolicyOpt = None,
    safety: SafetyOpt = False,
    safety_policy: SafetyPolicyOpt = None,
) -> None:
    """Chat with a local model or the cascade. Reads one message per line when stdin is not a terminal."""
    interactive = sys.stdin.isatty()
    assistant = open_assistant(model, cascade, policy, safety, safety_policy, n_ctx)
    session = ChatSession(assistant, system)
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if interactive:
        _history(load=True)
        err.print(f"[dim]edgekit chat on {assistant.name} - /help for commands, Ctrl-D to leave[/dim]")
    try:
        while True:
            line = _read_message(interactive)
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
        session.assistant.close()
        if interactive:
            _history(load=False)


def _history(*, load: bool) -> None:
    """Line editing (arrows, Ctrl-R) and history across sessions, where readline exists."""
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without readline
        return
    path = Path(platformdirs.user_data_dir("edgekit")) / "chat_history"
    try:
        if load:
            if path.exists():
                readline.read_history_file(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.set_history_length(1000)
            readline.write_history_file(path)
    except OSError:
        pass  # history is a convenience: an unreadable file must not end the chat


def _read_message(interactive: bool) -> str | None:
    """One message: a line, lines joined by a trailing backslash, or a \"\"\" block."""
    first = _read_line(interactive, ">>> ")
    if first is None or (first.strip() != '"""' and not first.rstrip("\n").endswith("\\")):
        return first
    lines: list[str] = []
    if first.strip() == '"""':
        while (line := _read_line(interactive, "... ")) is not None and line.strip() != '"""':
            lines.append(line.rstrip("\n"))
        return "\n".join(lines)
    more: str | None = first
    while more is not None and more.rstrip("\n").endswith("\\"):
        lines.append(more.rstrip("\n")[:-1])
        more = _read_line(interactive, "... ")
    if more is not None:
        lines.append(more.rstrip("\n"))
    return "\n".join(lines)


def _read_line(interactive: bool, prompt: str) -> str | None:
    if interactive:
        try:
            return input(prompt)
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
        return
    if session.last is not None:
        show_route(session.last, session.assistant)


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
        if not arg:
            out.print(f"(system prompt: {session.system!r})" if session.system else "(no system prompt)")
        else:
            session.system = None if arg == "off" else arg
            out.print("(system prompt cleared)" if arg == "off" else "(system prompt set)", markup=False)
    elif cmd == "/show":
        _show(session, params)
    elif cmd == "/model":
        _switch_model(session, arg, n_ctx)
    elif cmd == "/schema":
        _set_schema(arg, params)
    elif cmd == "/route":
        _explain(session)
    else:
        err.print(f"unknown command {cmd}; /help lists them", markup=False)
    return None


def _switch_model(session: ChatSession, name: str, n_ctx: int | None) -> None:
    current = session.assistant
    if not name:
        out.print(f"(model: {current.name})", markup=False)
        return
    if current.router is not None:
        err.print("/model switches a single model; the cascade's models come from its policy", markup=False)
        return
    try:
        with progress_bar() as progress:
            new = edgekit.load(name, n_ctx=n_ctx, progress=progress)
    except EdgekitError as e:
        err.print(error_line(e), markup=False)
        return
    current.close()
    session.assistant = edgekit.Assistant(new, guard=current.guard)
    out.print(f"(switched to {new.name})", markup=False)


def _show(session: ChatSession, params: dict[str, Any]) -> None:
    assistant = session.assistant
    schema = params.get("schema")
    lines = [
        f"model: {assistant.name}" + (" (cascade)" if assistant.router is not None else ""),
        f"system: {session.system!r}" if session.system else "system: (none)",
        "parameters: " + ", ".join(f"{k}={v}" for k, v in params.items() if k != "schema"),
        f"schema: {schema.name if schema is not None else 'off'}",
        f"safety: {'on' if assistant.guard is not None else 'off'}",
        f"history: {len(session.history)} messages ({session.dropped} dropped to fit the context)",
    ]
    out.print("\n".join(lines), markup=False)


def _explain(session: ChatSession) -> None:
    answer = session.last
    if answer is None:
        out.print("(no answer yet)")
        return
    lines = [answer.status_line(), f"trace: {answer.trace_id}"]
    lines += [f"gate {g.gate}: {g.verdict} ({g.reason})" for g in answer.gates]
    lines += [f"rejected {r}" for r in answer.rejections]
    lines += [f"safety {f.layer}: {f.category} -> {f.action} ({f.reason})" for f in answer.findings]
    if answer.privacy.restored or answer.privacy.missing:
        lines.append(
            f"placeholders restored {list(answer.privacy.restored)}, dropped {list(answer.privacy.missing)}"
        )
    out.print("\n".join(lines), markup=False)


def _set_schema(arg: str, params: dict[str, Any]) -> None:
    if not arg:
        current = params.get("schema")
        out.print(f"(schema: {current.name if current is not None else 'off'})", markup=False)
    elif arg == "off":
        params.pop("schema", None)
        out.print("(schema off)")
    else:
        try:
            params["schema"] = schema_option(Path(arg).expanduser(), strict=False)
        except EdgekitError as e:
            err.print(error_line(e), markup=False)
            return
        out.print(f"(answers now follow the schema {params['schema'].name})", markup=False)
