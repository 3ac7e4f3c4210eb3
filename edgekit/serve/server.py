"""Run the app under uvicorn with graceful shutdown.

On SIGINT or SIGTERM: stop admitting (queued requests get 503), stop accepting connections, give running
requests ``grace_s`` to finish (then cancel them, which stops their generation), close the responder, and
return normally, so the process exits 0. uvicorn's own habit of re-raising the signal after a graceful
stop (which would kill the process with it) is left out. A second Ctrl-C forces the exit.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

from edgekit.errors import InputError, MissingDependencyError

try:
    import uvicorn
    from starlette.applications import Starlette
except ImportError as e:  # pragma: no cover - exercised by a test that hides uvicorn
    raise MissingDependencyError(
        f"edgekit serve needs the 'serve' extra ({e.name} is not installed)", "pip install 'edgekit[serve]'"
    ) from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port), so a busy port is a clear input error."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as e:
        raise InputError(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            "Pick another --port (0 takes any free one), or stop what uses it.",
        ) from None


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        service = self._app.state.service
        service.begin_shutdown()
        if self.force_exit:  # a second Ctrl-C: do not wait for running streams either
            service.cancel_all()


def run(
    app: Starlette,
    sock: socket.socket,
    *,
    grace_s: float = 10.0,
    log_level: str | None = None,
) -> None:
    """Serve ``app`` (from ``create_app``) on a socket from ``bind`` until SIGINT/SIGTERM.

    ``log_level`` None leaves logging alone (library use); a level lets uvicorn configure its own
    loggers, as the CLI does. The access log and edgekit's line per answered request (status, tokens,
    milliseconds, route) are on only at info and debug.
    """
    log_config = None
    if log_level:  # uvicorn's own setup, plus edgekit's request lines (tokens, time, route) at info
        log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        log_config["loggers"]["edgekit.serve"] = {
            "handlers": ["default"],
            "level": "INFO",
            "propagate": False,
        }
    config = uvicorn.Config(
        app,
        log_config=log_config,
        log_level=log_level,
        access_log=log_level in ("info", "debug", "trace"),
        timeout_graceful_shutdown=max(grace_s, 0.1),  # type: ignore[arg-type]  # a float works
        lifespan="on",
        server_header=False,
    )
    _Server(config, app).run(sockets=[sock])
