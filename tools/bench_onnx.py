"""Benchmark the ONNX targets of the default model against its GGUFs: size, drift and speed.

    python tools/bench_onnx.py [--out DIR] [--calibration PATH] [--calibration-texts N] [--threads N]
                               [--rounds N]

The default GGUF (Q4_1) is dequantized to a Hugging Face folder, exported to fp32 ONNX and quantized to
int8-dynamic, int8-static (calibrated on the shipped calibration set, never the eval texts) and int4.
The same folder is converted to an F16 GGUF and quantized to Q8_0 and Q4_K_M.

- Drift: each ONNX build, and for scale each reference GGUF, against the Q4_1 GGUF they were made from
  (``edgekit.run_eval`` on the held-out eval slices, tasks and speed off): mean/p99 KL divergence, top-1
  agreement, perplexity ratio.
- Speed: each ONNX build beside the GGUF of its class (fp32 and the int8 builds beside Q8_0, int4 beside
  Q4_K_M), both loaded at once and answering the same prompt greedily in ABBA order for ``--rounds``
  rounds, so a slow spell on a shared machine hits both sides alike: prompt-processing tok/s (prompt
  tokens over time to the first token) and generation tok/s (after the first token), medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import edgekit
from edgekit.compress.calibration import load_calibration
from edgekit.compress.hf import dequantized
from edgekit.compress.passes.gguf_convert import convert_checked
from edgekit.compress.passes.gguf_quantize import quantize_gguf
from edgekit.compress.passes.onnx_export import export_causal_lm
from edgekit.compress.passes.onnx_quantize import MODES, TextSet, quantize_onnx
from edgekit.config import Settings
from edgekit.evaluate import run_eval
from edgekit.files import content_size
from edgekit.models.lock import Lockfile

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "recipes" / "data" / "eval"
SLICES = ("prose", "code", "structured", "multilingual")
REFERENCE = {"fp32": "Q8_0", "int8-dynamic": "Q8_0", "int8-static": "Q8_0", "int4": "Q4_K_M"}
PROMPT = (
    "Here is a short text about the history of paper. Paper was first made in China around the second "
    "century, from mulberry bark, hemp and rags. The craft spread along trade routes to Samarkand, "
    "Baghdad and Cairo, and reached Europe through Spain in the eleventh century. Water-powered mills "
    "made it cheaper, and the printing press made it indispensable. Summarize this history in a few "
    "sentences, then say which step mattered most and why."
)


def write_suite(folder: Path) -> Path:
    lines = ["version = 1", 'description = "bench_onnx: drift and speed"', "[drift]", "chunk_tokens = 512"]
    for name in SLICES:
        lines += [f"[slices.{name}]", f'file = "{EVAL / f"{name}.txt"}"']
    lines += ["[tasks]", "enabled = false", "[speed]", "runs = 0", "[gates]"]
    path = folder / "bench_onnx_suite.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def speeds(pair: tuple[Path, Path], threads: int | None, rounds: int) -> list[tuple[float, float]]:
    """(prompt tok/s, generation tok/s) of each side, medians over ``rounds`` ABBA rounds."""
    models = [edgekit.load(str(path), threads=threads) for path in pair]
    try:
        for model in models:  # warm-up: first-call allocations and page faults stay out of the figures
            model.chat(PROMPT, temperature=0.0, max_tokens=8)
        seen: list[list[tuple[float, float]]] = [[], []]
        for r in range(rounds):
            # a new prompt each round, so llama.cpp's reuse of a cached prompt prefix cannot flatter it
            prompt = f"Request {r + 1}. {PROMPT}"
            for side in (0, 1) if r % 2 == 0 else (1, 0):
                reply = models[side].chat(prompt, temperature=0.0, max_tokens=64)
                t = reply.timings
                seen[side].append((reply.usage.prompt_tokens / t.ttft_s, t.tokens_per_s))
        return [
            (statistics.median(p for p, _ in runs), statistics.median(g for _, g in runs)) for runs in seen
        ]
    finally:
        for model in models:
            model.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "edgekit" / "bench-onnx")
    parser.add_argument("--calibration", type=Path, default=ROOT / "recipes" / "data" / "calibration")
    parser.add_argument("--calibration-texts", type=int, default=16, help="documents used for int8-static")
    parser.add_argument("--threads", type=int, default=None, help="threads per model [default: edgekit's]")
    parser.add_argument("--rounds", type=int, default=4, help="ABBA speed rounds per pair")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    gguf = edgekit.pull()
    settings = Settings.from_env()
    hf = dequantized(gguf, Lockfile.load(settings.lock_path).get().sha256, settings)  # as tests
    started = time.perf_counter()
    fp32 = export_causal_lm(hf, out / "fp32")
    seconds = {"fp32": time.perf_counter() - started}
    cal = load_calibration(args.calibration)
    subset = TextSet(cal.texts[: args.calibration_texts])
    builds = {"fp32": fp32}
    for mode in MODES:
        started = time.perf_counter()
        data = subset if mode == "int8-static" else None
        builds[mode] = quantize_onnx(fp32, out / mode, mode, calibration=data)
        seconds[mode] = time.perf_counter() - started
    # beside the HF folder, in its cache entry (as tests and the other benches keep the F16 conversion), so
    # a new dequantization gets new references instead of stale ones
    f16 = hf.parent / f"{hf.name}.F16.gguf"
    if not f16.is_file():
        convert_checked(hf, f16)
    references = {}
    for qtype in sorted(set(REFERENCE.values())):
        references[qtype] = hf.parent / f"{hf.name}.{qtype}.gguf"
        if not references[qtype].is_file():
            quantize_gguf(f16, references[qtype], qtype)

    suite = write_suite(out)
    print(
        f"drift baseline: {gguf.name} ({content_size(gguf) / 1e6:.1f} MB), eval slices: {', '.join(SLICES)}"
    )
    print(f"int8-static calibration: {len(subset.texts)} documents of {args.calibration}")
    print(
        "speed: GGUF sizes "
        + ", ".join(f"{q} {content_size(p) / 1e6:.1f} MB" for q, p in references.items())
        + f"; {args.rounds} ABBA rounds, 64 tokens, threads per model: "
        + f"{args.threads or os.environ.get('EDGEKIT_THREADS', 'default')}"
    )
    header = (
        f"{'build':<13}{'size MB':>9}{'build s':>9}{'mean KLD':>10}{'p99 KLD':>9}{'top-1':>7}"
        f"{'ppl ratio':>10}{'vs':>8}{'pp tok/s':>10}{'GGUF':>8}{'ratio':>7}"
        f"{'gen tok/s':>11}{'GGUF':>8}{'ratio':>7}"
    )
    print(header)
    for mode, folder in builds.items():
        report = run_eval(gguf, folder, suite=suite, threads=args.threads)
        o = report.overall
        ref = REFERENCE[mode]
        (pp, gen), (ref_pp, ref_gen) = speeds((folder, references[ref]), args.threads, args.rounds)
        print(
            f"{mode:<13}{content_size(folder) / 1e6:>9.1f}{seconds[mode]:>9.1f}{o.mean_kld:>10.4f}"
            f"{o.p99_kld:>9.3f}{o.top1:>7.3f}{o.ppl_ratio:>10.3f}{ref:>8}"
            f"{pp:>10.1f}{ref_pp:>8.1f}{pp / ref_pp:>7.2f}{gen:>11.1f}{ref_gen:>8.1f}{gen / ref_gen:>7.2f}",
            flush=True,
        )
    for qtype, path in references.items():  # for scale: the GGUFs' own drift from the same baseline
        o = run_eval(gguf, path, suite=suite, threads=args.threads).overall
        print(
            f"{qtype:<13}{content_size(path) / 1e6:>9.1f}{'':>9}{o.mean_kld:>10.4f}{o.p99_kld:>9.3f}"
            f"{o.top1:>7.3f}{o.ppl_ratio:>10.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
