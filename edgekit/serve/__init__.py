"""edgekit serve: an OpenAI-compatible HTTP server over an ``edgekit.Assistant``.

The assistant is the whole request path (safety, cascade or one model, schema, tool calls); the server
maps OpenAI bodies onto ``Assistant.chat`` (and legacy text completions onto ``Assistant.complete``) and
answers back, adding ``edgekit_route`` for a cascade. ``/v1/embeddings`` runs the on-device sentence
encoder (``ServeOptions.embedding_model``), loaded on its first request.
``--concurrency N`` loads N engine copies into one assistant. A bare responder (``protocol.py``: anything
with ``edgekit.Model``'s ``chat``) can be served too, for tests of the HTTP logic.

    from edgekit.serve import ServeOptions, bind, create_app, run
    app = create_app(edgekit.Assistant.open(model="smollm2-135m-instruct"), ServeOptions(max_queue=8))
    run(app, bind("127.0.0.1", 8000), grace_s=10)     # or hand ``app`` to any ASGI server

``create_app``, ``ServeOptions``, ``bind`` and ``run`` need the ``serve`` extra (Starlette, uvicorn); without
it they raise ``MissingDependencyError``. The protocol needs nothing beyond edgekit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.serve.protocol import Responder

if TYPE_CHECKING:
    from edgekit.serve.app import ServeOptions, create_app
    from edgekit.serve.server import bind, run

__all__ = ["Responder", "ServeOptions", "bind", "create_app", "run"]

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
