"""The house rules that an import scan can check: arrows point down.

- Nothing inside ``edgekit/`` imports the ``edgekit`` facade, except the CLI (which sits above it) and
  ``__main__``.
- Only ``edgekit/cli/`` imports typer or ``edgekit.cli``: the library never knows the CLI.
- The lower floors (``runtime``, ``models``, ``safety``, ``schema``, ``cascade``) never import what sits
  above them (``edgekit.api``, ``assistant``, ``serve``, ``evaluate``, ``compress``).
- ``runtime/`` knows nothing of safety, routing or the assistant.
- Nothing in ``compress/`` imports the pipeline but the pipeline and the one-call front ends that run an
  in-memory recipe through it (``compress/quantize.py``, ``compress/onnx.py``): the pipeline loads the
  passes by name, and they see only ``compress/step.py``.
- No module imports another module's private name (one leading underscore): neither
  ``from edgekit.x import _name`` nor ``x._name`` on something imported from edgekit. What two modules
  share is public in the lower one; dunder names are not private.

Known exceptions would be listed here by name, so a new one fails and a fixed one must be taken off the
list; there are none left.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
LOWER = ("runtime", "models", "safety", "schema", "cascade")
ABOVE = ("edgekit.api", "edgekit.assistant", "edgekit.serve", "edgekit.evaluate", "edgekit.compress")
KNOWN: set[tuple[str, str]] = set()
PIPELINE_FRONT_ENDS = ("compress/quantize.py", "compress/onnx.py", "compress/__init__.py")  # and the surface

KNOWN_PRIVATE: set[tuple[str, str]] = set()  # (module path inside edgekit/, what it reaches into)


def sources() -> list[tuple[str, str]]:
    """(module path inside edgekit/, its source) for every module."""
    files = sorted(PACKAGE.rglob("*.py"))
    return [(f.relative_to(PACKAGE).as_posix(), f.read_text(encoding="utf-8")) for f in files]


def imports() -> list[tuple[str, str]]:
    """(module path inside edgekit/, imported module) for every import, function-level ones included."""
    out = []
    for rel, source in sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                out += [(rel, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.append((rel, node.module))
    return out


def broken(rel: str, mod: str) -> str | None:
    floor = rel.split("/", 1)[0]
    if floor == "cli" or rel == "__main__.py":
        return None
    if mod == "edgekit" and rel != "__init__.py":
        return "imports the edgekit facade"
    if mod == "typer" or mod.startswith("edgekit.cli"):
        return "knows the CLI"
    if floor in LOWER and any(mod == a or mod.startswith(a + ".") for a in ABOVE):
        return "imports a floor above it"
    if floor == "runtime" and mod.split(".")[:2][-1] in ("safety", "cascade", "assistant", "schema"):
        return "runtime reaches up"
    if (
        rel.startswith("compress/")
        and not rel.startswith("compress/pipeline/")
        and rel not in PIPELINE_FRONT_ENDS
        and (mod == "edgekit.compress.pipeline" or mod.startswith("edgekit.compress.pipeline."))
    ):
        return "a pass imports the pipeline that loads it"
    return None


def test_arrows_point_down() -> None:
    found = {(rel, mod): why for rel, mod in imports() if (why := broken(rel, mod))}
    new = {k: v for k, v in found.items() if k not in KNOWN}
    assert not new, "\n".join(f"edgekit/{rel} {why}: {mod}" for (rel, mod), why in sorted(new.items()))
    fixed = KNOWN - set(found)
    assert not fixed, f"take these off KNOWN, they are fixed: {sorted(fixed)}"


def test_the_scan_sees_what_it_checks() -> None:
    assert broken("cascade/router.py", "edgekit") == "imports the edgekit facade"
    assert broken("safety/guard.py", "edgekit.api") == "imports a floor above it"
    assert broken("serve/app.py", "typer") == "knows the CLI"
    assert broken("runtime/onnx.py", "edgekit.safety.guard") == "runtime reaches up"
    assert (
        broken("compress/passes/imatrix.py", "edgekit.compress.pipeline")
        == "a pass imports the pipeline that loads it"
    )
    assert broken("compress/pipeline/run.py", "edgekit.compress.pipeline.plan") is None
    assert broken("compress/quantize.py", "edgekit.compress.pipeline") is None
    assert broken("cli/run.py", "edgekit") is None and broken("runtime/onnx.py", "edgekit.errors") is None
    assert len(imports()) > 200


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(rel: str) -> str:
    """``models/verify.py`` -> ``edgekit.models.verify``; a package's ``__init__.py`` -> the package."""
    parts = ["edgekit", *rel.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, rel: str) -> str:
    if not node.level:
        return node.module or ""
    here = _module_of(rel).split(".")
    base = here if rel.endswith("__init__.py") else here[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def private_uses(rel: str, source: str) -> list[str]:
    """Where the module ``rel`` reaches into another edgekit module's private names, as
    ``edgekit.x._name`` (from-imports, function-level ones included, and ``alias._name`` attribute use of
    anything imported from edgekit)."""
    me = _module_of(rel)
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> the edgekit module or object it was imported as
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "edgekit" or a.name.startswith("edgekit."):
                    bound[a.asname or "edgekit"] = a.name if a.asname else "edgekit"
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node, rel)
            if mod != "edgekit" and not mod.startswith("edgekit."):
                continue
            for a in node.names:
                if _private(a.name) and mod != me:
                    found.append(f"{mod}.{a.name}")
                bound[a.asname or a.name] = f"{mod}.{a.name}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, root = [node.attr], node.value
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        if isinstance(root, ast.Name) and root.id in bound:
            target = ".".join([bound[root.id], *reversed(chain[1:])])
            if target != me:
                found.append(f"{target}.{node.attr}")
    return found


def test_no_module_imports_another_ones_private_name() -> None:
    found = {(rel, use) for rel, source in sources() for use in private_uses(rel, source)}
    new = found - KNOWN_PRIVATE
    assert not new, "\n".join(f"edgekit/{rel} uses a private name: {use}" for rel, use in sorted(new))
    fixed = KNOWN_PRIVATE - found
    assert not fixed, f"take these off KNOWN_PRIVATE, they are fixed: {sorted(fixed)}"


def test_the_private_scan_sees_what_it_checks() -> None:
    def uses(source: str, rel: str = "evaluate/run.py") -> list[str]:
        return private_uses(rel, source)

    assert uses("from edgekit.models.verify import _noop") == ["edgekit.models.verify._noop"]
    assert uses("def f():\n    from edgekit.api import _looks_like_path") == ["edgekit.api._looks_like_path"]
    assert uses("from edgekit.runtime import gguf\ngguf._Reader") == ["edgekit.runtime.gguf._Reader"]
    assert uses("import edgekit.cli.run as r\nr._schema()") == ["edgekit.cli.run._schema"]
    assert uses("import edgekit.cli.run\nedgekit.cli.run._schema") == ["edgekit.cli.run._schema"]
    assert uses("from edgekit.api import Model\nModel._open") == ["edgekit.api.Model._open"]
    assert uses("from .run import _x", "evaluate/report.py") == ["edgekit.evaluate.run._x"]
    assert uses("from edgekit.files import no_progress, __all__\nimport edgekit\nedgekit.__version__") == []
    assert uses("def _own(): ...\n_own()\nself._x\nimport os\nos._exit") == []
    assert uses("from edgekit.evaluate.run import _x", "evaluate/run.py") == []  # its own name
    assert len(sources()) > 100
