"""Benchmark: does the importance matrix lower quantization drift? (Not a test; prints numbers.)

From the default model's F16 GGUF (its GGUF dequantized to a Hugging Face folder, converted with
edgekit's convert pass, tokenizer checked), quantize Q4_K_M, Q4_0, Q3_K_M and IQ4_XS without and with an
importance matrix computed on ``recipes/data/calibration`` and score each against the F16 on the drift
gate's held-out text (``recipes/data/eval``: prose, code, structured, multilingual, long_context) with
``edgekit.run_eval``: every position of 512-token windows, against the F16 scored once and cached (KL over
its top 1,024 tokens plus a tail bucket, a close lower bound of the exact value).

Two ways to compute the matrix are compared, each timed on the same calibration tokens:

- ``llama.cpp``: ``compute_imatrix`` (the eval callback on the F16 GGUF, what ``edgekit quantize`` uses);
- ``torch``: forward hooks on the Hugging Face model's ``nn.Linear`` inputs, names mapped to GGUF names.

Target: calibrated Q4_K_M mean KLD <= 0.85x the uncalibrated one on the same text. Run from the
repository root (about 15 minutes on 2 cores):

    EDGEKIT_THREADS=1 python tools/bench_imatrix.py [--types Q4_K_M,Q4_0] [--no-torch] [--max-chunks N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "recipes" / "data" / "calibration"
EVAL = ROOT / "recipes" / "data" / "eval"
TYPES = ("Q4_K_M", "Q4_0", "Q3_K_M", "IQ4_XS")
HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def f16_source() -> tuple[Path, Path]:
    """(HF folder, F16 GGUF) of the default model, built once and cached like the test fixtures."""
    import edgekit
    from edgekit.compress.hf import dequantized
    from edgekit.compress.passes.gguf_convert import convert_checked
    from edgekit.config import Settings
    from edgekit.models.lock import Lockfile

    gguf = edgekit.pull()
    settings = Settings.from_env()
    hf = dequantized(gguf, Lockfile.load(settings.lock_path).get().sha256, settings)
    f16 = hf.parent / f"{hf.name}.F16.gguf"
    if not f16.is_file():
        convert_checked(hf, f16, outtype="f16")
    return hf, f16


def torch_imatrix(hf: Path, texts: tuple[str, ...], n_ctx: int, max_chunks: int | None, name: str):
    """The same statistics from PyTorch forward hooks on nn.Linear inputs (fp32, CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgekit.compress.imatrix import Imatrix

    tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    ids = tok("\n\n".join(texts), add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + n_ctx] for i in range(0, len(ids), n_ctx) if len(ids[i : i + n_ctx]) >= 64]
    windows = windows[:max_chunks] if max_chunks else windows
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(gguf_name: str):
        def fn(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].reshape(-1, args[0].shape[-1]).double()
            sums[gguf_name] = sums.get(gguf_name, 0) + (x * x).sum(0)
            counts[gguf_name] = counts.get(gguf_name, 0) + x.shape[0]

        return fn

    handles = []
    for mod_name, module in model.named_modules():
        for suffix, short in HF_TO_GGUF.items():
            if isinstance(module, torch.nn.Linear) and mod_name.endswith(suffix):
                layer = mod_name.split(".")[2]  # model.layers.N.<suffix>
                handles.append(module.register_forward_pre_hook(hook(f"blk.{layer}.{short}.weight")))
    with torch.inference_mode():
        for w in windows:
            model(torch.tensor([w]))
    for h in handles:
        h.remove()
    values = {n: (s / counts[n]).float().numpy() for n, s in sums.items()}
    return Imatrix(
        values, {n: np.array([counts[n]], np.float32) for n in values}, len(windows), n_ctx, (name,)
    )


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def raw_quantize(src: Path, out: Path, qtype: str) -> None:
    """llama.cpp's quantizer without an importance matrix, for types edgekit's quantize insists need one."""
    from edgekit.compress.passes.gguf_quantize import QUANT_TYPES

    code = (
        "import sys, ctypes, llama_cpp as l; p = l.llama_model_quantize_default_params(); "
        f"p.ftype = {QUANT_TYPES[qtype]}; p.nthread = 1; "
        "sys.exit(l.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))"
    )
    subprocess.run([sys.executable, "-c", code, str(src), str(out)], check=True, capture_output=True)


def _score(
    f16: Path, work: Path, suite: Path, qtype: str, source: str | None, matrices: dict
) -> tuple[str, str, float, float, float, float]:
    import edgekit
    from edgekit.compress.passes.gguf_quantize import NEEDS_IMATRIX, quantize_gguf

    out = work / f"{qtype}-{source or 'none'}.gguf"
    if source is None and qtype in NEEDS_IMATRIX:
        raw_quantize(f16, out, qtype)
    else:
        quantize_gguf(f16, out, qtype, imatrix=matrices[source] if source else None, threads=1)
    o = edgekit.run_eval(f16, out, suite=suite, cache=True).overall
    out.unlink()
    print(
        f"  {qtype:7s} imatrix={source or 'none':9s} mean KLD {o.mean_kld:.4f}  p99 {o.p99_kld:.3f}"
        f"  top1 {o.top1:.3f}  ppl ratio {o.ppl_ratio:.4f}  ({o.tokens} positions)",
        flush=True,
    )
    return (qtype, source or "none", o.mean_kld, o.p99_kld, o.top1, o.ppl_ratio)


def suite_file(folder: Path) -> Path:
    slices = "".join(f'[slices.{p.stem}]\nfile = "{p}"\n\n' for p in sorted(EVAL.glob("*.txt")))
    path = folder / "bench-suite.toml"
    path.write_text(
        'version = 1\ndescription = "imatrix bench: drift only"\n\n[drift]\nchunk_tokens = 512\n\n'
        + slices
        + "[tasks]\nenabled = false\n\n[speed]\nruns = 0\n",
        encoding="utf-8",
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch-hooks matrix")
    ap.add_argument("--torch-types", default="Q4_K_M", help="types also quantized with the torch matrix")
    ap.add_argument("--max-chunks", type=int, default=None, help="calibration windows (default: all)")
    ap.add_argument("--n-ctx", type=int, default=512)
    args = ap.parse_args()

    from edgekit.compress.calibration import check_overlap, load_calibration
    from edgekit.compress.imatrix import check_imatrix
    from edgekit.compress.passes.imatrix import compute_imatrix

    hf, f16 = f16_source()
    cal = load_calibration(CALIBRATION)
    ov = check_overlap(cal)
    print(f"F16 baseline: {f16}")
    print(
        f"calibration: {CALIBRATION} ({len(cal.texts)} documents, {cal.chars:,} chars, "
        f"sha256 {cal.sha256[:12]})"
    )
    print(f"overlap with the evaluation text: {ov.share:.3%} of 8-grams (warning above {ov.threshold:.0%})")

    # Wall time on a shared machine says little; CPU seconds (the child's, for llama.cpp) compare fairly.
    t, c = time.perf_counter(), _child_cpu()
    matrices = {"llama.cpp": compute_imatrix(f16, cal, n_ctx=args.n_ctx, max_chunks=args.max_chunks)}
    t_llama, c_llama = time.perf_counter() - t, _child_cpu() - c
    im = matrices["llama.cpp"]
    tokens = int(next(iter(im.counts.values()))[0])
    print(
        f"imatrix llama.cpp eval callback: {t_llama:.1f} s wall, {c_llama:.1f} s CPU, {im.chunks} windows, "
        f"{tokens:,} tokens, {len(im.values)} tensors",
        flush=True,
    )
    rows: list[tuple[str, str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-imatrix-") as tmp:
        work = Path(tmp)
        suite = suite_file(work)
        # The baseline is scored once and cached (top-k + tail KL, a close lower bound of the exact value;
        # see edgekit/evaluate/drift.py); every candidate is scored against the same cached baseline.
        for qtype in args.types.split(","):
            for source in (None, "llama.cpp"):
                rows.append(_score(f16, work, suite, qtype, source, matrices))
        if not args.no_torch:
            t, c = time.perf_counter(), time.process_time()
            matrices["torch"] = torch_imatrix(hf, cal.texts, args.n_ctx, args.max_chunks, cal.name)
            t_torch, c_torch = time.perf_counter() - t, time.process_time() - c
            check_imatrix(matrices["torch"], f16)
            tt = int(next(iter(matrices["torch"].counts.values()))[0])
            print(
                f"imatrix torch forward hooks:     {t_torch:.1f} s wall, {c_torch:.1f} s CPU, "
                f"{matrices['torch'].chunks} windows, {tt:,} tokens "
                f"(CPU ratio torch/llama.cpp {c_torch / c_llama:.2f}x)",
                flush=True,
            )
            for name in ("blk.0.attn_q.weight", "blk.15.ffn_down.weight"):
                a, b = matrices["llama.cpp"].values[name], matrices["torch"].values[name]
                print(f"  {name}: correlation of the two matrices {np.corrcoef(a, b)[0, 1]:.4f}")
            for qtype in args.torch_types.split(","):
                rows.append(_score(f16, work, suite, qtype, "torch", matrices))

    print("\n| type | imatrix | mean KLD | p99 KLD | top-1 | ppl ratio | KLD vs none |")
    print("|---|---|---|---|---|---|---|")
    base = {r[0]: r[2] for r in rows if r[1] == "none"}
    for qtype, source, kld, p99, top1, ppl in rows:
        ratio = f"{kld / base[qtype]:.3f}x" if qtype in base else ""
        print(f"| {qtype} | {source} | {kld:.4f} | {p99:.3f} | {top1:.3f} | {ppl:.4f} | {ratio} |")
    q4 = {r[1]: r[2] for r in rows if r[0] == "Q4_K_M"}
    if "none" in q4 and "llama.cpp" in q4:
        r = q4["llama.cpp"] / q4["none"]
        print(
            f"\nQ4_K_M calibrated / uncalibrated mean KLD: {r:.3f}x "
            f"(target <= 0.85x: {'met' if r <= 0.85 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
