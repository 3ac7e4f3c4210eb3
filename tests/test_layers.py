"""The house rules that an import scan can check: arrows point down.

- Nothing inside ``edgekit/`` imports the ``edgekit`` facade, except the CLI (which sits above it) and
  ``__main__``.
- Only ``edgekit/cli/`` imports typer or ``edgekit.cli``: the library never knows the CLI.
- The lower floors (``runtime``, ``models``, ``safety``, ``schema``, ``cascade``) never import what sits
  above them (``edgekit.api``, ``assistant``, ``serve``, ``evaluate``, ``compress``).
- ``runtime/`` knows nothing of safety, routing or the assistant.

Known exceptions still to remove (issue 14) are listed here by name, so a new one fails and a fixed one
must be taken off the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgekit"
LOWER = ("runtime", "models", "safety", "schema", "cascade")
ABOVE = ("edgekit.api", "edgekit.assistant", "edgekit.serve", "edgekit.evaluate", "edgekit.compress")
KNOWN = {
    # the grammar mask is built from the schema package; it should reach the backend as a logits processor
    ("runtime/llamacpp.py", "edgekit.schema.matcher"),
    # the sentence encoder is built by a compress pass; it should move where safety and cascade both use it
    ("safety/encoder.py", "edgekit.compress.passes.onnx_encoder"),
}


def imports() -> list[tuple[str, str]]:
    """(module path inside edgekit/, imported module) for every import, function-level ones included."""
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
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
    assert broken("cli/run.py", "edgekit") is None and broken("runtime/onnx.py", "edgekit.errors") is None
    assert len(imports()) > 200
