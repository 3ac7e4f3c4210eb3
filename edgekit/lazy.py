"""A package's public names, imported on first use (PEP 562's module ``__getattr__``).

A package ``__init__`` states its surface in a table (public name -> the module that defines it, and the
name there) without importing those modules, so ``import edgekit`` and the CLI's start stay fast and a
light submodule does not pull in a backend. The ``TYPE_CHECKING`` imports beside each table give type
checkers the same names (a test keeps the two and ``__all__`` equal).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports(
    package: str, table: Mapping[str, tuple[str, str]], *, submodules: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``. With ``submodules``, an unknown name that is a
    subpackage (``edgekit.runtime`` after ``import edgekit``) is imported."""

    def __getattr__(name: str) -> Any:
        if name in table:
            module, attr = table[name]
            value = getattr(import_module(module), attr)
            vars(sys.modules[package])[name] = value  # later look-ups skip this function
            return value
        if submodules:
            try:
                return import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__
