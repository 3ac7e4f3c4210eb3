"""The CLI's one table from library errors to exit codes and CLI wording (edgekit/cli/errors.py)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.cli.errors import FLAGS, cli_words, error_line, exit_code
from edgekit.errors import (
    BackendError,
    CheckFailedError,
    DownloadError,
    EdgekitError,
    EmptyPromptError,
    InputError,
    LockfileError,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CheckFailedError("gate failed"), 1),
        (InputError("bad"), 2),
        (LockfileError("bad lock"), 2),
        (EmptyPromptError("empty"), 2),
        (BackendError("crashed"), 3),
        (DownloadError("offline"), 3),
        (EdgekitError("anything"), 3),
        (ValueError("unexpected"), 3),
    ],
)
def test_each_family_has_its_exit_code(error: BaseException, code: int) -> None:
    assert exit_code(error) == code


def test_api_phrases_become_flags_and_nothing_else_changes() -> None:
    hint = "Quantize from the F16/F32 source, or pass allow_requantize=True to do it anyway."
    assert cli_words(hint) == "Quantize from the F16/F32 source, or pass --allow-requantize to do it anyway."
    assert cli_words("Pass calibration=DATA or imatrix=FILE.") == "Pass --calibration DATA or --imatrix FILE."
    plain = "max_tokens must be at least 1; the answer says max_tokens too"
    assert cli_words(plain) == plain  # only the exact keyword forms are rewritten
    assert all(flag.startswith("--") and "=" not in phrase.split("=")[0] for phrase, flag in FLAGS.items())


def test_the_default_input_hint_is_the_clis_own_but_a_specific_one_is_kept() -> None:
    assert error_line(InputError("bad value")) == "error: bad value (hint: Check the command's --help.)"
    assert "Give a non-empty prompt" in error_line(EmptyPromptError("empty prompt"))
    assert InputError("x").hint == "Check the value named above against the documentation."


COMMAND = re.compile(r"'(edgekit|optimum-cli|pip) [^']*'")


def flag_hints(source: str) -> list[int]:
    """Lines of ``source`` where an error's message or hint (its first two arguments) names a ``--flag``,
    except inside a quoted shell command to run (``'edgekit pull NAME --force'``), which reads the same to
    any caller."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "").endswith("Error"):
            for arg in node.args[:2]:
                text = COMMAND.sub("", ast.unparse(arg))
                if " --" in text or text.lstrip("f").startswith(("'--", '"--')):
                    found.append(node.lineno)
    return found


def test_the_library_speaks_no_flag_in_its_hints() -> None:
    """Every flag a library hint used to name is now an API phrase that the table rewrites. Serving is
    left out: its hints go to HTTP clients about how the server was started."""
    root = Path(__file__).resolve().parents[2] / "edgekit"
    found = [
        f"{path.relative_to(root)}:{line}"
        for path in sorted(root.rglob("*.py"))
        if not path.relative_to(root).as_posix().startswith(("cli/", "serve/"))
        for line in flag_hints(path.read_text(encoding="utf-8"))
    ]
    assert not found, found
    assert flag_hints('raise InputError("x", "Drop them for --format onnx.")') == [1]
    assert flag_hints('raise InputError("x", f"Run \'edgekit pull {n} --force\'.")') == []
    assert flag_hints('raise InputError("x", "Pass calibration=DATA.")') == []
    assert flag_hints('raise InputError(f"--drop-layers {n} is too many", "Drop fewer.")') == [1]


def test_the_cli_prints_flags_where_the_api_says_parameters(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edgekit", "quantize", "smollm2-135m-instruct", "--to", "Q2_K"]
    cmd += ["--out", str(tmp_path / "x.gguf")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--calibration DATA" in done.stderr and "calibration=DATA" not in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
