"""edgekit serve: an OpenAI-compatible HTTP server over a ``Responder``.

The seam (``protocol.py``) is ``edgekit.Model``'s own surface: ``name``, ``chat(messages, *, stream, system,
max_tokens, temperature, top_p, seed, stop)`` and ``close()``. Today the server answers with a loaded model
(``edgekit serve --model NAME``; a ``ModelPool`` of copies for ``--concurrency N``). The cascade router
implements the same protocol and plugs in without changes here; it may add route and trace metadata to
responses through ``create_app(..., extras=...)`` (see ``ResponseExtras``).

    from edgekit.serve import ServeOptions, bind, create_app, run
    app = create_app(edgekit.load(), ServeOptions(max_queue=8))
    run(app, bind("127.0.0.1", 8000), grace_s=10)     # or hand ``app`` to any ASGI server

``create_app``, ``ServeOptions``, ``bind`` and ``run`` need the ``serve`` extra (Starlette, uvicorn); without
it they raise ``MissingDependencyError``. The protocol and the pool need nothing beyond edgekit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.serve.pool import ModelPool
from edgekit.serve.protocol import Responder, ResponseExtras

if TYPE_CHECKING:
    from edgekit.serve.app import ServeOptions, create_app
    from edgekit.serve.server import bind, run

__all__ = ["ModelPool", "Responder", "ResponseExtras", "ServeOptions", "bind", "create_app", "run"]

_LAZY = {
    "ServeOptions": "edgekit.serve.app",
    "create_app": "edgekit.serve.app",
    "bind": "edgekit.serve.server",
    "run": "edgekit.serve.server",
}


def __getattr__(name: str) -> Any:
    """Load the server modules (and Starlette/uvicorn) only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekit.serve' has no attribute {name!r}")
