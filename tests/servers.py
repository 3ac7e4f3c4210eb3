"""Real OpenAI-compatible servers for tests: llama-cpp-python's own server (code edgekit did not write)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_DEADLINE_S = 180.0


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    base_url: str
    model_id: str
    api_key: str
    log: Path

    def diagnose(self) -> str:
        rc = self.proc.poll()
        state = "still running" if rc is None else f"exited with status {rc}"
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return f"llama_cpp.server {state}; log tail:\n{tail}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(timeout=2.0, headers=headers) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                pytest.fail(f"llama_cpp.server did not start. {server.diagnose()}")
            try:
                if client.get(f"{server.base_url}/models").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    pytest.fail(
        f"llama_cpp.server did not answer /v1/models within {START_DEADLINE_S:.0f}s. {server.diagnose()}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def llama_server(
    model: Path, log_dir: Path, *, n_ctx: int = 2048, log_requests: bool = False
) -> Iterator[LlamaServer]:
    """Serve ``model`` on a free loopback port with a random API key until the block ends.
    ``log_requests``: the log also holds every request body the server received."""
    assert model.is_file(), f"model not found at {model}"
    port = free_port()
    api_key = "sk-llama-" + secrets.token_hex(12)
    log = log_dir / "server.log"
    cmd = [
        sys.executable, *([str(Path(__file__).parent / "logged_llama_server.py")] if log_requests
                          else ["-m", "llama_cpp.server"]),
        "--model", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        # One thread: on a small shared CI box, OpenMP threads that spin-wait against other work can make
        # decoding a hundred times slower.
        "--n_threads", "1",
        "--n_threads_batch", "1",
        "--api_key", api_key,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Log to a file, not a pipe: nobody drains a pipe while tests run, and a full one blocks the server.
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(proc, f"http://127.0.0.1:{port}/v1", str(model), api_key, log)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        _stop(proc)
