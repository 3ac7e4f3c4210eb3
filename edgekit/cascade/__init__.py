"""Tiny-model-first cascade: gates decide the route, local signals decide acceptance, the remote is the
fallback, and every decision is recorded with its reason.

Its public names (``__all__``) import on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import exports

if TYPE_CHECKING:
    from edgekit.cascade.policy import Policy, resolve_policy, shipped_policies
    from edgekit.cascade.router import ChatModel, Router, RouteResult

__all__ = [
    "ChatModel",
    "Policy",
    "RouteResult",
    "Router",
    "resolve_policy",
    "shipped_policies",
]

_PUBLIC: dict[str, tuple[str, str]] = {
    "ChatModel": ("edgekit.cascade.router", "ChatModel"),
    "Policy": ("edgekit.cascade.policy", "Policy"),
    "RouteResult": ("edgekit.cascade.router", "RouteResult"),
    "Router": ("edgekit.cascade.router", "Router"),
    "resolve_policy": ("edgekit.cascade.policy", "resolve_policy"),
    "shipped_policies": ("edgekit.cascade.policy", "shipped_policies"),
}
__getattr__, __dir__ = exports(__name__, _PUBLIC)
