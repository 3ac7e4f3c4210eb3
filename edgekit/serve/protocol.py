"""What the server can serve besides an ``edgekit.Assistant``: a bare ``Responder`` (an assistant's engine,
see ``edgekit.assistant.engine``), which it wraps in an assistant with no guard."""

from edgekit.assistant.engine import Engine as Responder

__all__ = ["Responder"]
