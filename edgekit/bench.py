"""Benchmark edgekit's local path against raw llama-cpp-python in the same run.

Each side runs in its own child process (so peak RSS is its own), loads the same GGUF with the same
thread count and context, decodes greedily from the same chat prompt, and reports prompt-processing
speed, time to first token, generation speed and peak RSS. Greedy decoding on both sides must produce
the same text; the report says whether it did.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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
    raw: SideResult
    edgekit: SideResult

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
        d.update(gen_ratio=round(self.gen_ratio, 4), prompt_ratio=round(self.prompt_ratio, 4),
                 ttft_overhead_ms=round(self.ttft_overhead_ms, 2), same_output=self.same_output,
                 rss_over_model_mb=round(self.edgekit.peak_rss_mb - self.model_size_mb, 1))
        return d


def run_bench(model_path: Path, *, model: str, threads: int, n_ctx: int = 2048, max_tokens: int = 128,
              runs: int = 3, prompt: str = DEFAULT_PROMPT) -> BenchReport:
    sides = {}
    for side in ("raw", "edgekit"):
        cmd = [sys.executable, "-m", "edgekit.bench", side, str(model_path), str(threads), str(n_ctx),
               str(max_tokens), str(runs), prompt]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise BackendError(f"bench worker '{side}' failed: {tail}")
        sides[side] = SideResult(**json.loads(proc.stdout.strip().splitlines()[-1]))
    return BenchReport(model, str(model_path), model_path.stat().st_size / 1e6, threads, n_ctx, runs,
                       sides["raw"], sides["edgekit"])


# --- workers (run in a child process) -----------------------------------------------------------------


def _raw(path: str, threads: int, n_ctx: int, max_tokens: int, prompt: str):  # type: ignore[no-untyped-def]
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, verbose=False)
    load_s = time.perf_counter() - t0
    messages = [{"role": "user", "content": prompt}]

    def once() -> tuple[float, float, int, str]:
        llm.reset()
        start = time.perf_counter()
        first, n, parts = None, 0, []
        for chunk in llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0, stream=True):
            delta = chunk["choices"][0]["delta"].get("content")  # type: ignore[index, union-attr]
            if delta:
                first = first or time.perf_counter()
                n += 1
                parts.append(delta)
        end = time.perf_counter()
        return (first or end) - start, end - (first or end), n, "".join(parts)

    return llm, load_s, once


def _edgekit(path: str, threads: int, n_ctx: int, max_tokens: int, prompt: str):  # type: ignore[no-untyped-def]
    import edgekit

    t0 = time.perf_counter()
    model = edgekit.load(Path(path), n_ctx=n_ctx, threads=threads)
    load_s = time.perf_counter() - t0

    def once() -> tuple[float, float, int, str]:
        model.backend.reset()  # type: ignore[attr-defined]
        start = time.perf_counter()
        first, n, parts = None, 0, []
        for chunk in model.chat(prompt, stream=True, max_tokens=max_tokens, temperature=0.0):
            if chunk.signals:
                first = first or time.perf_counter()
                n += len(chunk.signals)
                parts.append(chunk.text)
        end = time.perf_counter()
        return (first or end) - start, end - (first or end), n, "".join(parts)

    return model, load_s, once


def _worker(side: str, path: str, threads: int, n_ctx: int, max_tokens: int, runs: int, prompt: str) -> dict[str, object]:
    import hashlib

    obj, load_s, once = (_raw if side == "raw" else _edgekit)(path, threads, n_ctx, max_tokens, prompt)
    once()  # warm-up: page in weights, build graphs
    results = [once() for _ in range(runs)]
    prompt_tokens = _prompt_tokens(side, obj, prompt)
    ttft = statistics.median(r[0] for r in results)
    gen_rates = [(r[2] - 1) / r[1] for r in results if r[2] > 1 and r[1] > 0]
    text = results[-1][3]
    return asdict(SideResult(
        side=side, load_s=round(load_s, 4), prompt_tokens=prompt_tokens, gen_tokens=results[-1][2],
        ttft_ms=round(ttft * 1000, 2), prompt_tok_s=round(prompt_tokens / ttft, 1) if ttft else 0.0,
        gen_tok_s=round(statistics.median(gen_rates), 2) if gen_rates else 0.0,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        text_sha=hashlib.sha256(text.encode()).hexdigest()[:16],
    ))


def _prompt_tokens(side: str, obj: object, prompt: str) -> int:
    messages = [{"role": "user", "content": prompt}]
    if side == "edgekit":
        return len(obj.backend.prompt_tokens(messages))  # type: ignore[attr-defined]
    import llama_cpp.llama_chat_format as cf

    llm = obj
    template = llm.metadata["tokenizer.chat_template"]  # type: ignore[attr-defined]
    eos, bos = llm.token_eos(), llm.token_bos()  # type: ignore[attr-defined]
    fmt = cf.Jinja2ChatFormatter(template, llm._model.token_get_text(eos), llm._model.token_get_text(bos))  # type: ignore[attr-defined]
    return len(llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=False, special=True))  # type: ignore[attr-defined]


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    side, path, threads, n_ctx, max_tokens, runs, prompt = sys.argv[1:8]
    print(json.dumps(_worker(side, path, int(threads), int(n_ctx), int(max_tokens), int(runs), prompt)))
