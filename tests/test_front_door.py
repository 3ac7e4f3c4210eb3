"""The front door stays honest: README commands, CI script, public API and CLI reference agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import edgekit
from edgekit.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", README, re.DOTALL)


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", quick, re.DOTALL)
    assert len(blocks) == 2 and all("\n" not in b for b in blocks)
    assert "edgekit run" in blocks[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1] in ci.splitlines(), ".ci/run must run the README's test command as written"


def test_public_api_all_is_sorted_and_complete() -> None:
    assert edgekit.__all__ == sorted(edgekit.__all__)
    assert set(edgekit._PUBLIC) | {"__version__"} == set(edgekit.__all__)
    for name in edgekit.__all__:  # every name resolves (lazily), and is not a module
        assert not isinstance(getattr(edgekit, name), ModuleType), name
    assert edgekit.load_safety_policy is edgekit.safety.load_policy
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        edgekit.nonexistent  # noqa: B018


def test_import_edgekit_loads_no_backend_or_cli() -> None:
    code = (
        "import sys, edgekit\n"
        "print(sorted(m for m in sys.modules if m.startswith(('edgekit.', 'llama_cpp', 'typer'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['edgekit.lazy', 'edgekit.version']"


def _commands() -> dict[str, list[str]]:
    import typer.main

    group = typer.main.get_command(app)
    found: dict[str, list[str]] = {}

    def walk(cmd, prefix: str) -> None:  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{prefix} {name}".strip())
            return
        found[prefix] = [o for p in cmd.params for o in p.opts if o.startswith("--")]

    walk(group, "")
    return found


def test_cli_reference_lists_every_command_and_option() -> None:
    ref = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    for command, options in _commands().items():
        head = re.compile(rf"\| `edgekit {re.escape(command)}[ `]")  # "eval" must not match "eval-router"
        row = next((line for line in ref.splitlines() if head.match(line)), None)
        assert row, f"README's CLI reference lacks 'edgekit {command}'"
        for opt in options:
            assert opt in row, f"README's row for 'edgekit {command}' lacks {opt}"
