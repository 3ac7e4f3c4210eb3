"""Native work in child processes: a llama.cpp abort (C++ terminate, SIGABRT, SIGSEGV) ends the child,
never the caller's process. These helpers keep the children's environment and failure reports alike."""

from __future__ import annotations

import os
import subprocess
import sys


def native_env() -> dict[str, str]:
    """The environment for a child that runs llama.cpp.

    Any non-empty PYTHONFAULTHANDLER (even "0") turns faulthandler on, and its dump would bury llama.cpp's
    "what(): ..." line; GGML_NO_BACKTRACE stops ggml attaching gdb to the dying child.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["GGML_NO_BACKTRACE"] = "1"
    return env


def run_module(
    module: str, *args: str, timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` in a child with ``native_env()``, ``stdin`` fed in and the output kept
    as text. Raises ``subprocess.TimeoutExpired`` (the child killed) after ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=native_env(),
    )


def last_line(stderr: str, width: int = 300) -> str:
    """The child's last non-empty stderr line: where llama.cpp and Python put the reason."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return (lines or ["no output"])[-1][:width]


def failure(returncode: int, stderr: str, width: int = 300) -> str:
    """'signal 6: <last line>' or 'exit 1: <last line>'."""
    how = f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"
    return f"{how}: {last_line(stderr, width)}"
