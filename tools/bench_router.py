"""Router benchmark: the 135M default model on device, Qwen2.5-Coder-1.5B behind llama-cpp-python's own
OpenAI-compatible server on loopback as the remote, and `edgekit eval-router` over the shipped labeled set.

    python tools/bench_router.py [--policy recipes/cascade/cross-check.toml] [--out router.json] [--resume]
        [--data router-public.jsonl --max-tokens 128]

Prints the report (always-local, always-remote, oracle, cascade at the threshold chosen on the calibration
split, measured on the test split). Per-item results go to router.jsonl (router.jsonl.partial while it
runs); ``--resume`` reuses the answers already there for unchanged prompts, so an interrupted run goes on
where it stopped. Loopback only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import edgekit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--remote-model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("router-report.json"))
    ap.add_argument("--resume", action="store_true", help="Reuse the per-item results already saved.")
    ap.add_argument("--policy", type=Path, help="Cascade policy [default: the shipped one].")
    ap.add_argument("--data", type=Path, help="Labeled prompts [default: the shipped router set].")
    ap.add_argument("--max-tokens", type=int, default=64, help="Tokens per answer.")
    args = ap.parse_args()
    model = edgekit.pull(args.remote_model)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(args.threads),
        "--n_threads_batch",
        str(args.threads),
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        env = {**os.environ, "EDGEKIT_REMOTE_URL": base}
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgekit",
                "eval-router",
                "--json",
                "--observations",
                str(args.out.with_suffix(".jsonl")),
                *(["--resume"] if args.resume else []),
                *(["--policy", str(args.policy)] if args.policy else []),
                *(["--data", str(args.data)] if args.data else []),
                "--max-tokens",
                str(args.max_tokens),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        args.out.write_text(proc.stdout)
        print(proc.stdout)
        print(f"eval-router took {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
