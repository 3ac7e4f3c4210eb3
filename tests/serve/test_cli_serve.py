"""`edgekit serve` refusals that come before any model is loaded: missing extra, key, port, options."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

HIDE_AND_RUN = (
    "import sys; sys.modules[{mod!r}] = None\n"
    "from edgekit.cli.app import main; main(['serve', *sys.argv[1:]])"
)


def run_cli(
    *args: str, env: dict[str, str] | None = None, hide: str | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = (
        [sys.executable, "-c", HIDE_AND_RUN.format(mod=hide), *args]
        if hide
        else [sys.executable, "-m", "edgekit", "serve", *args]
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("missing", ["starlette", "uvicorn"])
def test_without_the_serve_extra_it_names_the_extra(missing: str) -> None:
    assert_one_line_error(run_cli(hide=missing), 3, "'serve' extra", missing, "pip install 'edgekit[serve]'")


def test_api_key_env_must_hold_a_key() -> None:
    env = {"EDGEKIT_TEST_NO_KEY": ""}
    assert_one_line_error(
        run_cli("--api-key-env", "EDGEKIT_TEST_NO_KEY", env=env), 2, "EDGEKIT_TEST_NO_KEY is unset or empty"
    )


def test_busy_port_is_an_input_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(run_cli("--port", str(port)), 2, f"cannot listen on 127.0.0.1:{port}", "--port")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--concurrency", "0"), "--concurrency"),
        (("--queue-timeout", "0"), "--queue-timeout"),
        (("--max-queue", "-1"), "--max-queue"),
        (("--log-level", "loud"), "--log-level"),
        (("--read-timeout", "0"), "--read-timeout 0.0 is not a positive"),
        (("--read-timeout", "nan"), "--read-timeout"),
        (("--port", "99999"), "--port 99999 is not a TCP port"),
        (("--embedding-model", "smollm2-135m-instruct"), "not a sentence encoder"),
        (("--embedding-model", "no-such-encoder"), "unknown model 'no-such-encoder'"),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(run_cli(*args), 2, needle)
