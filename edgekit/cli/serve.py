"""edgekit serve: an OpenAI-compatible HTTP server on a local model (chat, text completions, embeddings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgekit.cli.options import (
    CascadeOpt,
    ModelOpt,
    NCtxOpt,
    PolicyOpt,
    SafetyOpt,
    SafetyPolicyOpt,
    open_assistant,
)
from edgekit.cli.render import err
from edgekit.errors import InputError
from edgekit.net import is_loopback

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8000,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env", help="Environment variable holding the bearer token clients must send."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Generations at once (each loads its own copy).")
    ] = 1,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Requests that may wait for a slot; beyond: HTTP 429.")
    ] = 16,
    queue_timeout: Annotated[
        float, typer.Option("--queue-timeout", help="Seconds a request may wait in the queue; then HTTP 503.")
    ] = 30.0,
    n_ctx: NCtxOpt = None,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds running requests get to finish on SIGINT/SIGTERM.")
    ] = 10.0,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            help="Seconds a client may take to send a request's headers and body; then it is cut off.",
        ),
    ] = 30.0,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level; 'info' adds an access log.")
    ] = "warning",
    cascade: CascadeOpt = False,
    policy: PolicyOpt = None,
    safety: SafetyOpt = False,
    safety_policy: SafetyPolicyOpt = None,
    embedding_model: Annotated[
        str,
        typer.Option(
            "--embedding-model", help="models.lock encoder behind /v1/embeddings (loaded on first use)."
        ),
    ] = "multilingual-e5-small-int8",
    shadow: Annotated[
        Path | None,
        typer.Option(
            "--shadow",
            help="Another cascade policy (file or shipped name) judged on every request and recorded in "
            "its trace, never acted on; see 'edgekit trace stats --compare'.",
        ),
    ] = None,
) -> None:
    """Serve a local model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions,
    /v1/embeddings, /v1/models, /health)."""
    import edgekit
    from edgekit.serve import ServeOptions, bind, create_app, run  # needs the 'serve' extra

    if log_level not in LOG_LEVELS:
        raise InputError(f"--log-level {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if not 0 < read_timeout < float("inf"):
        raise InputError(f"--read-timeout {read_timeout} is not a positive number of seconds")
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port", "Use 0-65535 (0: any free port).")
    encoder = edgekit.lockfile().get(embedding_model)  # a name not in models.lock fails here, not later
    if encoder.role != "encoder":
        raise InputError(
            f"--embedding-model {embedding_model}: not a sentence encoder (role {encoder.role})",
            "Name an entry with role 'encoder' (see 'edgekit models list').",
        )
    options = ServeOptions(
        api_key=_api_key(api_key_env),
        concurrency=concurrency,
        max_queue=max_queue,
        queue_timeout_s=queue_timeout,
        close_wait_s=grace,
        embedding_model=encoder.name,
    )
    sock = bind(host, port)  # before loading: a busy port fails fast
    assistant = open_assistant(
        model, cascade or shadow is not None, policy, safety, safety_policy, n_ctx, copies=concurrency,
        notice="warning", shadow=shadow,
    )  # fmt: skip
    app = create_app(assistant, options)
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    err.print(f"edgekit serve: {assistant.name} on http://{url_host}:{bound_port}/v1", markup=False)
    if options.api_key is None and not is_loopback(host):
        err.print(f"warning: listening on {host} without --api-key-env: anyone who can reach it may use it")
    run(app, sock, grace_s=grace, read_timeout_s=read_timeout, log_level=log_level)


def _api_key(env: str | None) -> str | None:
    if env is None:
        return None
    key = os.environ.get(env, "").strip()
    if not key:
        raise InputError(f"--api-key-env {env}: ${env} is unset or empty", f"Export {env}=<key> first.")
    return key
