"""llama-cpp-python's own server (``python -m llama_cpp.server``), with every request body it receives
written to its log: a test can then prove what reached the remote, and what never did."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from llama_cpp.server import __main__ as server

_run = uvicorn.run


def _logged(app: Any, **kwargs: Any) -> None:
    async def logging_app(scope: Any, receive: Any, send: Any) -> None:
        async def logged_receive() -> Any:
            message = await receive()
            if message.get("type") == "http.request" and message.get("body"):
                sys.stdout.write("request body: " + message["body"].decode("utf-8", "replace") + "\n")
                sys.stdout.flush()
            return message

        await app(scope, logged_receive if scope["type"] == "http" else receive, send)

    _run(logging_app, **kwargs)


if __name__ == "__main__":
    server.uvicorn.run = _logged  # type: ignore[assignment]
    server.main()
