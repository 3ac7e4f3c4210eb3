"""Benchmark edgekit's local path against raw llama-cpp-python in the same run.

Each side runs in its own child process (so peak RSS is its own), loads the same GGUF with the same
thread count and context, decodes greedily from the same chat prompt, and reports prompt-processing
speed, time to first token, generation speed and peak RSS. Greedy decoding on both sides must produce
the same text; the report says whether it did.

``contended=True`` runs every worker beside a neighbour process that keeps one core busy, as a laptop or
phone usually has; with ``adaptive=True`` edgekit's side picks its threads itself (up to ``threads``,
fewer while the neighbour runs: ``edgekit.runtime.threads``) while raw llama-cpp-python keeps ``threads``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BackendError

DEFAULT_PROMPT = (
    "Write a detailed, multi-paragraph essay about the history of the printing press, "
    "its inventors, and how it changed science, religion and politics in Europe."
)


@dataclass(frozen=True)
class SideResult:
    side: str
    load_s: float
    prompt_tokens: int
    gen_tokens: int
    ttft_ms: float
    prompt_tok_s: float
    gen_tok_s: float
    peak_rss_mb: float
    text_sha: str


@dataclass(frozen=True)
class BenchReport:
    model: str
    model_path: str
    model_size_mb: float
    threads: int
    n_ctx: int
    runs: int
    rounds: int
    raw: SideResult
    edgekit: SideResult
    contended: bool = False
    adaptive: bool = False

    @property
    def gen_ratio(self) -> float:
        return self.edgekit.gen_tok_s / self.raw.gen_tok_s if self.raw.gen_tok_s else 0.0

    @property
    def prompt_ratio(self) -> float:
        return self.edgekit.prompt_tok_s / self.raw.prompt_tok_s if self.raw.prompt_tok_s else 0.0

    @property
    def ttft_overhead_ms(self) -> float:
        return self.edgekit.ttft_ms - self.raw.ttft_ms

    @property
    def same_output(self) -> bool:
        return self.raw.text_sha == self.edgekit.text_sha

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(
            gen_ratio=round(self.gen_ratio, 4),
            prompt_ratio=round(self.prompt_ratio, 4),
            ttft_overhead_ms=round(self.ttft_overhead_ms, 2),
            same_output=self.same_output,
            rss_over_model_mb=round(self.edgekit.peak_rss_mb - self.model_size_mb, 1),
        )
        return d


def run_bench(
    model_path: Path,
    *,
    model: str,
    threads: int,
    n_ctx: int = 2048,
    max_tokens: int = 128,
    runs: int = 3,
    rounds: int = 2,
    prompt: str = DEFAULT_PROMPT,
    contended: bool = False,
    adaptive: bool = False,
) -> BenchReport:
    # ABBA order: raw, edgekit, edgekit, raw, ... so drift in machine speed hits both sides alike.
    order = [side for _ in range(rounds) for side in ("raw", "edgekit", "edgekit", "raw")][: 2 * rounds]
    results: dict[str, list[SideResult]] = {"raw": [], "edgekit": []}
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if contended else None
    try:
        for side in order:
            n = "auto" if adaptive and side == "edgekit" else str(threads)
            cmd = [sys.executable, "-m", "edgekit.bench", side, str(model_path), n, str(n_ctx),
                   str(max_tokens), str(runs), prompt]  # fmt: skip
            results[side].append(_run_worker(cmd, side))
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    sides = {side: _combine(rs) for side, rs in results.items()}
    return BenchReport(
        model,
        str(model_path),
        model_path.stat().st_size / 1e6,
        threads,
        n_ctx,
        runs,
        rounds,
        sides["raw"],
        sides["edgekit"],
        contended,
        adaptive,
    )


def _run_worker(cmd: list[str], side: str) -> SideResult:
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_THREADS"}  # "auto" means no fixed count
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendError(f"bench worker '{side}' failed: {tail}")
    return SideResult(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _combine(results: list[SideResult]) -> SideResult:
    """Median speed and latency over worker processes; the largest peak RSS."""
    first = results[0]
    return SideResult(
        side=first.side,
        load_s=statistics.median(r.load_s for r in results),
        prompt_tokens=first.prompt_tokens,
        gen_tokens=first.gen_tokens,
        ttft_ms=statistics.median(r.ttft_ms for r in results),
        prompt_tok_s=statistics.median(r.prompt_tok_s for r in results),
        gen_tok_s=statistics.median(r.gen_tok_s for r in results),
        peak_rss_mb=max(r.peak_rss_mb for r in results),
        text_sha=first.text_sha if all(r.text_sha == first.text_sha for r in results) else "differs",
    )


# --- workers (run in a child process) -----------------------------------------------------------------

Run = tuple[float, float, int, str]
"""(time to first token, decode seconds after it, tokens generated, text)"""


def _raw(
    path: str, threads: int, n_ctx: int, max_tokens: int, prompt: str
) -> tuple[float, Callable[[], Run], int]:
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    load_s = time.perf_counter() - t0
    messages: Any = [{"role": "user", "content": prompt}]

    def once() -> Run:
        llm.reset()
        start = time.perf_counter()
        first, n, parts = None, 0, []
        stream: Any = llm.create_chat_completion(
            messages, max_tokens=max_tokens, temperature=0.0, stream=True
        )
        for chunk in stream:
            delta = chunk["choices"][0]["delta"].get("content")
            if delta:
                first = first or time.perf_counter()
                n += 1
                parts.append(delta)
        end = time.perf_counter()
        return (first or end) - start, end - (first or end), n, "".join(parts)

    usage: Any = llm.create_chat_completion(messages, max_tokens=1, temperature=0.0)
    return load_s, once, int(usage["usage"]["prompt_tokens"])


def _edgekit(
    path: str, threads: int | None, n_ctx: int, max_tokens: int, prompt: str
) -> tuple[float, Callable[[], Run], int]:
    import llama_cpp  # noqa: F401  # imported before the clock starts, as on the raw side

    from edgekit.api import load
    from edgekit.runtime.llamacpp import LlamaCppBackend

    t0 = time.perf_counter()
    model = load(Path(path), n_ctx=n_ctx, threads=threads)
    load_s = time.perf_counter() - t0
    backend = model.backend
    assert isinstance(backend, LlamaCppBackend)

    def once() -> Run:
        backend.reset()
        start = time.perf_counter()
        first, n, parts = None, 0, []
        for chunk in model.chat(prompt, stream=True, max_tokens=max_tokens, temperature=0.0):
            if chunk.signals:
                first = first or time.perf_counter()
                n += len(chunk.signals)
                parts.append(chunk.text)
        end = time.perf_counter()
        return (first or end) - start, end - (first or end), n, "".join(parts)

    return load_s, once, len(backend.prompt_tokens([{"role": "user", "content": prompt}]))


def _worker(
    side: str, path: str, threads: int | None, n_ctx: int, max_tokens: int, runs: int, prompt: str
) -> dict[str, object]:
    if side == "raw":
        assert threads is not None
        load_s, once, prompt_tokens = _raw(path, threads, n_ctx, max_tokens, prompt)
    else:
        load_s, once, prompt_tokens = _edgekit(path, threads, n_ctx, max_tokens, prompt)
    once()  # warm-up: page in weights, build graphs
    results = [once() for _ in range(runs)]
    ttft = statistics.median(r[0] for r in results)
    gen_rates = [(r[2] - 1) / r[1] for r in results if r[2] > 1 and r[1] > 0]
    return asdict(
        SideResult(
            side=side,
            load_s=round(load_s, 4),
            prompt_tokens=prompt_tokens,
            gen_tokens=results[-1][2],
            ttft_ms=round(ttft * 1000, 2),
            prompt_tok_s=round(prompt_tokens / ttft, 1) if ttft else 0.0,
            gen_tok_s=round(statistics.median(gen_rates), 2) if gen_rates else 0.0,
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            text_sha=hashlib.sha256(results[-1][3].encode()).hexdigest()[:16],
        )
    )


if __name__ == "__main__":
    side, path, threads, n_ctx, max_tokens, runs, prompt = sys.argv[1:8]
    n = None if threads == "auto" else int(threads)
    print(json.dumps(_worker(side, path, n, int(n_ctx), int(max_tokens), int(runs), prompt)))
