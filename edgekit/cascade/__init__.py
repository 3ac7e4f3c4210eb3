"""Tiny-model-first cascade: gates decide the route, local signals decide acceptance, the remote is the
fallback, and every decision is recorded with its reason."""
