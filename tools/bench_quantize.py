"""Benchmark: edgekit's GGUF quantize (child process, progress, provenance) against raw llama-cpp-python.

For each type, the same F16 GGUF is quantized by ``llama_model_quantize`` called directly in this process
and by ``edgekit.compress.passes.gguf_quantize.quantize_gguf``, alternating the order between rounds (ABBA)
so load drift hits both sides. Prints wall seconds, the ratio edgekit/raw, output sizes and whether the
two outputs hold the same tensor bytes (they differ only in edgekit's provenance keys).

    python tools/bench_quantize.py [--f16 PATH] [--types Q8_0,Q4_K_M] [--rounds 2] [--threads 1]

Without ``--f16`` it converts the default model's HF folder (as the tests' default_f16_gguf does).
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import tempfile
import time
from pathlib import Path


def raw_quantize(src: Path, dst: Path, ftype: int, threads: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = ftype
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"raw llama_model_quantize failed: {rc}")


def tensor_bytes(path: Path) -> bytes:
    import hashlib

    import gguf

    h = hashlib.sha256()
    for t in gguf.GGUFReader(path).tensors:
        h.update(t.name.encode())
        h.update(bytes(t.data))
    return h.digest()


def default_f16() -> Path:
    import edgekit
    from edgekit.compress.hf import dequantized
    from edgekit.compress.passes.gguf_convert import convert_to_gguf
    from edgekit.config import Settings
    from edgekit.models.lock import Lockfile

    settings = Settings.from_env()
    gguf_path = edgekit.pull()
    hf = dequantized(gguf_path, Lockfile.load(settings.lock_path).get().sha256, settings)
    out = hf.parent / f"{hf.name}.F16.gguf"
    if not out.is_file():
        convert_to_gguf(hf, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--f16", type=Path)
    ap.add_argument("--types", default="Q8_0,Q4_K_M")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from edgekit.compress.passes.gguf_quantize import QUANT_TYPES, quant_type, quantize_gguf
    from edgekit.compress.provenance import Provenance

    src = args.f16 or default_f16()
    meta = Provenance(source=str(src), source_sha256="0" * 64, step="quantize").gguf_metadata()
    print(f"source {src} ({src.stat().st_size / 1e6:.1f} MB), {args.threads} thread(s), {args.rounds} rounds")
    head = ("type", "raw s", "edgekit s", "ratio", "raw MB", "edgekit MB")
    print(f"{head[0]:8} {head[1]:>8} {head[2]:>10} {head[3]:>6} {head[4]:>8} {head[5]:>11} same tensors")
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        for name in args.types.split(","):
            qtype = quant_type(name)
            raw_out, kit_out = Path(tmp) / f"raw-{qtype}.gguf", Path(tmp) / f"kit-{qtype}.gguf"
            times: dict[str, list[float]] = {"raw": [], "edgekit": []}

            for r in range(args.rounds):
                for side in ("raw", "edgekit") if r % 2 == 0 else ("edgekit", "raw"):
                    t = time.perf_counter()
                    if side == "raw":
                        raw_quantize(src, raw_out, QUANT_TYPES[qtype], args.threads)
                    else:
                        quantize_gguf(src, kit_out, qtype, metadata=meta, threads=args.threads)
                    times[side].append(time.perf_counter() - t)
            raw_s, kit_s = statistics.median(times["raw"]), statistics.median(times["edgekit"])
            same = tensor_bytes(raw_out) == tensor_bytes(kit_out)
            print(
                f"{qtype:8} {raw_s:8.2f} {kit_s:10.2f} {kit_s / raw_s:6.3f} "
                f"{raw_out.stat().st_size / 1e6:8.1f} {kit_out.stat().st_size / 1e6:11.1f} {same}"
            )


if __name__ == "__main__":
    main()
