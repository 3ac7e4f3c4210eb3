"""The public surface: each package's ``__all__`` (sorted, resolving lazily, the same names its
``TYPE_CHECKING`` block imports for type checkers), and the README naming only public paths."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("edgekit.runtime", "edgekit.models", "edgekit.cascade", "edgekit.compress")
NOT_PATHS = ("edgekit.eval", "edgekit.provenance")  # an eval report's schema id; GGUF metadata keys


def _checked_names(module: ModuleType) -> set[str]:
    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {a.asname or a.name for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}


@pytest.mark.parametrize("name", LAZY)
def test_a_package_exports_its_table_lazily_and_to_type_checkers(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__all__ == sorted(package.__all__)
    assert set(package.__all__) == set(package._PUBLIC) == _checked_names(package)
    folder = Path(str(package.__file__)).parent
    submodules = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if p.is_dir()}
    assert not set(package.__all__) & submodules  # a name that a submodule import would overwrite
    for public in package.__all__:
        assert not isinstance(getattr(package, public), ModuleType), public
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        package.nonexistent  # noqa: B018


def _public_path(path: str) -> str | None:
    """Why ``path`` is not a public name, or None: each step is a package that lists the next name in
    ``__all__`` (or a public subpackage), or an attribute of a public object."""
    obj: object = importlib.import_module("edgekit")
    for part in path.split(".")[1:]:
        if part.startswith("_"):
            return f"{part} is private"
        if isinstance(obj, ModuleType):
            sub = f"{obj.__name__}.{part}"
            is_package = (ROOT / sub.replace(".", "/") / "__init__.py").is_file()
            if sub == "edgekit.errors" or (is_package and hasattr(importlib.import_module(sub), "__all__")):
                obj = importlib.import_module(sub)
                continue
            if part not in getattr(obj, "__all__", ()):
                return f"{part} is not in {obj.__name__}.__all__"
        obj = getattr(obj, part, None)
        if obj is None:
            return f"{part} does not exist"
    return None


def test_the_readme_names_only_public_paths() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paths = {p for p in re.findall(r"edgekit(?:\.\w+)+", text) if not p.startswith(NOT_PATHS)}
    assert len(paths) > 20
    wrong = {p: why for p in sorted(paths) if (why := _public_path(p))}
    assert not wrong, wrong


def test_the_path_check_sees_what_it_checks() -> None:
    assert _public_path("edgekit.compress.passes.imatrix.compute_imatrix") == (
        "passes is not in edgekit.compress.__all__"
    )
    assert _public_path("edgekit.runtime.types._Private") == "types is not in edgekit.runtime.__all__"
    assert _public_path("edgekit.Assistant._open") == "_open is private"
    assert _public_path("edgekit.runtime.Backend") is None and _public_path("edgekit.Assistant.open") is None
