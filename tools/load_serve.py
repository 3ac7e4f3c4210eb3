"""Load test for a running `edgekit serve` on loopback: N clients in a closed loop for T seconds.

    edgekit serve --port 8000 &                      # or any options under test
    python tools/load_serve.py --url http://127.0.0.1:8000/v1 --clients 32 --duration 60 --pid $!

Each client sends a chat request (every other one streamed), waits for the answer, and goes again until
the time is up. A 429 or 503 is the server's documented back-pressure: the client waits for Retry-After
(capped by --max-backoff) and goes again. Prints requests that succeeded, 429 and 503 counts, anything
else as errors (with a sample), latency p50/p95 of the successes, and, with --pid, the server's RSS at the
start, its peak and at the end. Exit status 1 when there were errors beyond back-pressure.
Loopback only: this tool refuses other hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from edgekit.net import is_loopback

PROMPTS = [
    "Name three colours of the rainbow.",
    "What is the capital of France?",
    "Give one tip for writing clear emails.",
    "Say hello in Spanish.",
]


@dataclass
class Tally:
    ok: int = 0
    busy_429: int = 0
    busy_503: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    error_sample: str = ""

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.error_sample = self.error_sample or f"{kind}: {detail[:300]}"


def _loopback_only(url: str) -> None:
    if not is_loopback(urlsplit(url).hostname or ""):
        sys.exit(f"error: {url} is not a loopback address; this tool only loads a local server")


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, object], tally: Tally) -> float:
    """One request; returns how long to back off (0 when the next request may go at once)."""
    started = time.perf_counter()
    try:
        if body["stream"]:
            async with client.stream("POST", url, json=body) as resp:
                if resp.status_code == 200:
                    done = False
                    async for line in resp.aiter_lines():
                        done = done or line.strip() == "data: [DONE]"
                    if not done:
                        tally.error("stream-incomplete", "no [DONE]")
                        return 0.0
                else:
                    await resp.aread()
        else:
            resp = await client.post(url, json=body)
            if resp.status_code == 200:
                _ = resp.json()["choices"][0]["message"]["content"]  # the shape must be there
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
        tally.error(type(e).__name__, str(e))
        return 0.5
    if resp.status_code == 200:
        tally.ok += 1
        tally.latencies.append(time.perf_counter() - started)
        return 0.0
    if resp.status_code in (429, 503):
        if resp.status_code == 429:
            tally.busy_429 += 1
        else:
            tally.busy_503 += 1
        try:
            return float(resp.headers.get("retry-after", "1"))
        except ValueError:
            return 1.0
    tally.error(f"HTTP {resp.status_code}", resp.text)
    return 0.5


async def _client(
    i: int, args: argparse.Namespace, headers: dict[str, str], deadline: float, tally: Tally
) -> None:
    url = args.url.rstrip("/") + "/chat/completions"
    timeout = httpx.Timeout(args.request_timeout, connect=5.0)
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
        n = 0
        while time.monotonic() < deadline:
            body = {
                "model": "edgekit",
                "messages": [{"role": "user", "content": PROMPTS[(i + n) % len(PROMPTS)]}],
                "max_tokens": args.max_tokens,
                "temperature": 0.7,
                "stream": (i + n) % 2 == 1,
            }
            n += 1
            backoff = await _one(client, url, body, tally)
            if backoff:
                await asyncio.sleep(min(backoff, args.max_backoff, max(0.0, deadline - time.monotonic())))


async def _sample_rss(pid: int | None, stop: asyncio.Event, peak: list[int]) -> None:
    if pid is None:
        return
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def _rss(pid: int | None) -> int | None:
    if pid is None:
        return None
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    headers = {}
    if args.api_key_env:
        headers["Authorization"] = f"Bearer {os.environ[args.api_key_env]}"
    root = args.url.rstrip("/").removesuffix("/v1")
    rss_start = _rss(args.pid)
    tally = Tally()
    stop, peak = asyncio.Event(), [rss_start or 0]
    sampler = asyncio.create_task(_sample_rss(args.pid, stop, peak))
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(*(_client(i, args, headers, deadline, tally) for i in range(args.clients)))
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    async with httpx.AsyncClient(timeout=5) as client:
        health = (await client.get(root + "/health")).json()
    lat = sorted(tally.latencies)
    mib = 1 << 20
    return {
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "max_tokens": args.max_tokens,
        "ok": tally.ok,
        "http_429": tally.busy_429,
        "http_503": tally.busy_503,
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(tally.errors),
        "error_sample": tally.error_sample or None,
        "ok_per_s": round(tally.ok / elapsed, 2) if elapsed else 0.0,
        "latency_p50_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        "server_rss_start_mib": round(rss_start / mib, 1) if rss_start else None,
        "server_rss_peak_mib": round(peak[0] / mib, 1) if args.pid else None,
        "server_rss_end_mib": round((_rss(args.pid) or 0) / mib, 1) if args.pid else None,
        "server_health_after": health,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/v1", help="the server's /v1 URL (loopback)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--api-key-env", help="environment variable holding the server's key")
    parser.add_argument("--pid", type=int, help="the server's process id, for its RSS (needs psutil)")
    parser.add_argument("--max-backoff", type=float, default=1.0, help="cap on Retry-After waits, seconds")
    parser.add_argument("--request-timeout", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    _loopback_only(args.url)
    if args.clients < 1 or args.duration <= 0:
        sys.exit("error: --clients and --duration must be positive")
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
