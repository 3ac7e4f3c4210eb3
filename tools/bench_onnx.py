"""Benchmark the ONNX targets of the default model against its GGUF: size, speed and drift.

    python tools/bench_onnx.py [--out DIR] [--calibration PATH] [--calibration-texts N] [--threads N]

The default GGUF (Q4_1) is dequantized to a Hugging Face folder, exported to fp32 ONNX and quantized to
int8-dynamic, int8-static (calibrated on the shipped calibration set, never the eval texts) and int4.
Each ONNX build is then compared with the GGUF by ``edgekit.run_eval`` on the held-out eval slices
(tasks off): mean/p99 KL divergence, top-1 agreement and perplexity ratio, and greedy generation speed
of both sides measured in the same run, so the tok/s ratio holds even on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import edgekit
from edgekit.compress.calibration import load_calibration
from edgekit.compress.hf import dequantized
from edgekit.compress.passes.onnx_export import export_causal_lm
from edgekit.compress.passes.onnx_quantize import MODES, TextSet, quantize_onnx
from edgekit.config import Settings
from edgekit.evaluate import run_eval
from edgekit.files import content_size
from edgekit.models.lock import Lockfile

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "recipes" / "data" / "eval"
SLICES = ("prose", "code", "structured", "multilingual")


def write_suite(folder: Path) -> Path:
    lines = ["version = 1", 'description = "bench_onnx: drift and speed"', "[drift]", "chunk_tokens = 512"]
    for name in SLICES:
        lines += [f"[slices.{name}]", f'file = "{EVAL / f"{name}.txt"}"']
    lines += ["[tasks]", "enabled = false", "[speed]", "runs = 2", "max_tokens = 32", "[gates]"]
    path = folder / "bench_onnx_suite.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path.home() / ".cache" / "edgekit" / "bench-onnx")
    parser.add_argument("--calibration", type=Path, default=ROOT / "recipes" / "data" / "calibration")
    parser.add_argument("--calibration-texts", type=int, default=16, help="documents used for int8-static")
    parser.add_argument("--threads", type=int, default=None, help="threads per model [default: edgekit's]")
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

    suite = write_suite(out)
    print(f"baseline: {gguf.name} ({content_size(gguf) / 1e6:.1f} MB), eval slices: {', '.join(SLICES)}")
    print(f"int8-static calibration: {len(subset.texts)} documents of {args.calibration}")
    header = (
        f"{'build':<13}{'size MB':>9}{'build s':>9}{'mean KLD':>10}{'p99 KLD':>9}{'top-1':>7}"
        f"{'ppl ratio':>10}{'tok/s':>8}{'GGUF tok/s':>12}{'ratio':>7}"
    )
    print(header)
    for mode, folder in builds.items():
        report = run_eval(gguf, folder, suite=suite, threads=args.threads)
        o, (sb, sc) = report.overall, report.speed
        ratio = sc.gen_tok_s / sb.gen_tok_s if sc.gen_tok_s and sb.gen_tok_s else float("nan")
        print(
            f"{mode:<13}{content_size(folder) / 1e6:>9.1f}{seconds[mode]:>9.1f}{o.mean_kld:>10.4f}"
            f"{o.p99_kld:>9.3f}{o.top1:>7.3f}{o.ppl_ratio:>10.3f}{sc.gen_tok_s or 0:>8.1f}"
            f"{sb.gen_tok_s or 0:>12.1f}{ratio:>7.2f}",
            flush=True,
        )
    print(f"threads per model: {args.threads or os.environ.get('EDGEKIT_THREADS', 'default')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
