"""Run the app under uvicorn with graceful shutdown and read deadlines.

On SIGINT or SIGTERM: stop admitting (queued requests get 503), stop accepting connections, give running
requests ``grace_s`` to finish (then a stream still running ends with an error event, after the chunk in
hand, and its response completes; uvicorn cancels what is left ``SHUTDOWN_MARGIN_S`` later), close the
responder, and return normally, so the process exits 0. uvicorn's own habit of re-raising the signal after
a graceful stop (which would kill the process with it) is left out. A second Ctrl-C forces the exit.

Read deadlines (``read_timeout_s``): a request's headers and body must arrive within that many seconds of
the connection opening (or of the previous answer on a kept-alive connection), else the connection is
closed, with a 408 when nothing had been read of a request yet. Idle or trickling clients (slowloris)
therefore hold a connection, and its file descriptor, for a bounded time; an idle kept-alive connection
closes after uvicorn's keep-alive timeout (5 s). Connections beyond what the open-file limit allows
(``_connection_cap``) get a 503 and are closed at once, so the accept loop never runs out of descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from edgekit.errors import InputError, MissingDependencyError

try:
    import uvicorn
    from starlette.applications import Starlette
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as e:  # pragma: no cover - exercised by a test that hides uvicorn
    raise MissingDependencyError(
        f"edgekit serve needs the 'serve' extra ({e.name} is not installed)", "pip install 'edgekit[serve]'"
    ) from None


SHUTDOWN_MARGIN_S = 2.0
"""Seconds between the end of the grace time (streams end with an error event) and uvicorn cancelling
whatever still runs."""

FILES_KEPT_FREE = 64
"""Open files kept for the process itself (models, logs, traces) when capping connections."""

_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
)


class _DeadlineH11(H11Protocol):
    """uvicorn's h11 protocol with a read deadline per request (headers and body); see the module doc."""

    read_timeout_s = 30.0
    max_connections = 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._before: Any = None
        if len(self.connections) > self.max_connections:  # answered and closed now: its descriptor frees
            transport.write(_BUSY_503)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        """Start the clock for the next request (the cycle in place now is the previous one)."""
        self._disarm()
        self._before = self.cycle
        self._deadline = self.loop.call_later(self.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self.cycle is not self._before and not self.cycle.more_body:
            self._disarm()  # the request is read in full: the app's answer may take its time

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle is self._before:  # no request began: nothing is answering
            self.transport.write(_TIMEOUT_408)
        self.transport.close()


def _connection_cap() -> int:
    """Open connections the process can hold without running out of file descriptors (a connection past it
    gets a 503 and is closed at once, instead of the accept loop failing for everyone)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 16 if soft == resource.RLIM_INFINITY else max(8, soft - FILES_KEPT_FREE)


log = logging.getLogger("edgekit.serve")


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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_exception)
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        service = self._app.state.service
        service.begin_shutdown()
        if self.force_exit:  # a second Ctrl-C: do not wait for running streams either
            service.cancel_all()


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Out of descriptors while accepting (a burst of connections past the open-file limit): one line, not
    a traceback; asyncio pauses accepting for a second and tries again."""
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        log.warning(
            "out of file descriptors accepting connections (%s); accepting again in 1 s", exc.strerror
        )
        return
    loop.default_exception_handler(context)


def run(
    app: Starlette,
    sock: socket.socket,
    *,
    grace_s: float = 10.0,
    read_timeout_s: float = 30.0,
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
        timeout_graceful_shutdown=max(grace_s, 0.1) + SHUTDOWN_MARGIN_S,  # type: ignore[arg-type]
        lifespan="on",
        server_header=False,
        http=type(
            "DeadlineH11",
            (_DeadlineH11,),
            {"read_timeout_s": read_timeout_s, "max_connections": _connection_cap()},
        ),
    )
    _Server(config, app).run(sockets=[sock])
