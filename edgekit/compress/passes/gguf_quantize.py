"""GGUF -> quantized GGUF with llama.cpp's own quantizer (``llama_model_quantize``), in a child process.

The quantizer is native code that can abort on inputs it does not expect, so it runs in a child
(``python -m edgekit.compress.passes.gguf_quantize``) that reads its job as JSON on stdin and reports
each tensor on stdout for the progress bar. Per-tensor overrides map to the quantizer's own parameters
(``output_tensor_type``, ``token_embedding_type``, ``tt_overrides``: regex on tensor names, first match
wins); provenance goes into the file's metadata through ``kv_overrides`` (string values, at most 127
bytes each, which llama.cpp writes into the output header). An importance matrix travels to the child
as a file in llama.cpp's format and is handed to the quantizer as ``params.imatrix``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import BackendError, DiskFullError, InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, new_file_mode, no_progress
from edgekit.runtime.child import last_line, native_env

if TYPE_CHECKING:
    from edgekit.compress.imatrix import Imatrix
    from edgekit.compress.step import StepContext

# Whole-model types (llama_ftype). Names as llama.cpp's quantize tool spells them.
QUANT_TYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "BF16": 32,
    "Q8_0": 7,
    "Q6_K": 18,
    "Q5_K_M": 17,
    "Q5_K_S": 16,
    "Q5_1": 9,
    "Q5_0": 8,
    "Q4_K_M": 15,
    "Q4_K_S": 14,
    "Q4_1": 3,
    "Q4_0": 2,
    "Q3_K_L": 13,
    "Q3_K_M": 12,
    "Q3_K_S": 11,
    "Q2_K": 10,
    "Q2_K_S": 21,
    "IQ4_XS": 30,
    "IQ4_NL": 25,
    "IQ3_M": 27,
    "IQ3_S": 26,
    "IQ3_XS": 22,
    "IQ3_XXS": 23,
    "IQ2_M": 29,
    "IQ2_S": 28,
    "IQ2_XS": 20,
    "IQ2_XXS": 19,
    "IQ1_M": 31,
    "IQ1_S": 24,
}
FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})
# Types whose quality depends on an importance matrix: llama.cpp refuses the smallest without one, and
# the others lose markedly; edgekit asks for calibration data for all of them.
NEEDS_IMATRIX = frozenset({"Q2_K", "Q2_K_S"} | {t for t in QUANT_TYPES if t.startswith("IQ")})

# Per-tensor types (ggml_type) for overrides.
TENSOR_TYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "BF16": 30,
    "Q8_0": 8,
    "Q6_K": 14,
    "Q5_K": 13,
    "Q5_1": 7,
    "Q5_0": 6,
    "Q4_K": 12,
    "Q4_1": 3,
    "Q4_0": 2,
    "Q3_K": 11,
    "Q2_K": 10,
    "IQ4_XS": 23,
    "IQ4_NL": 20,
    "IQ3_S": 21,
    "IQ3_XXS": 18,
    "IQ2_S": 22,
    "IQ2_XS": 17,
    "IQ2_XXS": 16,
}
# general.file_type values of unquantized files.
UNQUANTIZED_FILE_TYPES = frozenset({0, 1, 32})

KV_MAX = 127  # llama_model_kv_override.val_str is char[128]
# How a failed write shows in llama.cpp's log: its std::ofstream reports no errno, only the stream state.
_WRITE_FAILED = ("iostream error", "No space left", "File too large", "failed to write")


@dataclass(frozen=True)
class TensorOverrides:
    """Types for chosen tensors: the output (lm head), the token embeddings, and regex rules by name."""

    output: str | None = None
    token_embedding: str | None = None
    tensors: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (pattern, TYPE), first match wins

    def __post_init__(self) -> None:
        for t in (self.output, self.token_embedding, *(t for _, t in self.tensors)):
            if t is not None:
                tensor_type(t)
        for pattern, _ in self.tensors:
            try:
                re.compile(pattern)
            except re.error as e:
                raise InputError(
                    f"tensor type pattern {pattern!r} is not a valid regex ({e})",
                    "Use a regular expression on tensor names, e.g. 'attn_v=Q8_0' or 'blk\\.0\\..*=F16'.",
                ) from None

    @classmethod
    def parse(
        cls, output: str | None = None, embedding: str | None = None, rules: tuple[str, ...] | list[str] = ()
    ) -> TensorOverrides:
        """From CLI strings: ``rules`` as ``PATTERN=TYPE``."""
        pairs = []
        for rule in rules:
            pattern, sep, t = rule.rpartition("=")
            if not sep or not pattern or not t:
                raise InputError(
                    f"tensor type rule {rule!r} is not PATTERN=TYPE", "Write e.g. 'ffn_down=Q6_K'."
                )
            pairs.append((pattern, t.upper()))
        return cls(output.upper() if output else None, embedding.upper() if embedding else None, tuple(pairs))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.output:
            d["output_type"] = self.output
        if self.token_embedding:
            d["embedding_type"] = self.token_embedding
        if self.tensors:
            d["tensor_types"] = [f"{p}={t}" for p, t in self.tensors]
        return d

    def __bool__(self) -> bool:
        return bool(self.output or self.token_embedding or self.tensors)


def quant_type(name: str) -> str:
    """The canonical spelling of a whole-model type, or InputError listing the valid ones."""
    key = name.strip().upper()
    if key not in QUANT_TYPES:
        raise InputError(f"unknown quantization type {name!r}", f"Use one of: {', '.join(QUANT_TYPES)}.")
    return key


def tensor_type(name: str) -> int:
    key = name.strip().upper()
    if key not in TENSOR_TYPES:
        raise InputError(f"unknown tensor type {name!r}", f"Per-tensor types are: {', '.join(TENSOR_TYPES)}.")
    return TENSOR_TYPES[key]


def is_quantized(gguf: Path) -> bool:
    """Whether the GGUF's weights are already quantized (general.file_type beyond F32/F16/BF16)."""
    from edgekit.runtime.gguf import read_gguf

    ft = read_gguf(gguf).metadata.get("general.file_type")
    return ft is not None and int(ft) not in UNQUANTIZED_FILE_TYPES


def kv_strings(metadata: Mapping[str, str]) -> dict[str, str]:
    """Metadata as llama.cpp's kv overrides can carry it: values cut to 127 UTF-8 bytes (marked '...')."""
    out = {}
    for key, value in metadata.items():
        raw = value.encode("utf-8")
        if len(raw) > KV_MAX:
            value = raw[: KV_MAX - 3].decode("utf-8", errors="ignore") + "..."
        out[key[:127]] = value
    return out


Runner = Callable[[dict[str, Any], Path, ProgressFn, float], None]
"""Runs a quantization job: (job, source path, progress, timeout)."""


def quantize_gguf(
    src: Path,
    out: Path,
    qtype: str,
    *,
    overrides: TensorOverrides | None = None,
    imatrix: Imatrix | None = None,
    metadata: Mapping[str, str] | None = None,
    allow_requantize: bool = False,
    threads: int | None = None,
    progress: ProgressFn = no_progress,
    timeout: float = 3600,
    runner: Runner | None = None,
) -> Path:
    """Quantize the GGUF ``src`` to ``qtype`` into ``out`` (written atomically). Returns ``out``.

    ``metadata`` (string values) is added to the output's header. Raises InputError for an unknown
    type, for a type that needs an importance matrix without one, and for an already-quantized source
    unless ``allow_requantize``. ``runner`` runs the job (default ``run_quantizer``, llama.cpp's quantizer
    in a child process); a test gives one that fails where the real one could.
    """
    qtype = quant_type(qtype)
    overrides = overrides or TensorOverrides()
    if qtype in NEEDS_IMATRIX and imatrix is None:
        raise InputError(
            f"{qtype} needs an importance matrix, and none was given",
            "Pass calibration=DATA (text to compute one on) or imatrix=FILE (from llama-imatrix).",
        )
    src = Path(src)
    if is_quantized(src) and not allow_requantize:
        raise InputError(
            f"{src} is already quantized; quantizing it again compounds the rounding error",
            "Quantize from the F16/F32 source, or pass allow_requantize=True to do it anyway.",
        )
    with tempfile.TemporaryDirectory(prefix="edgekit-quantize-") as work, atomic_output(Path(out)) as tmp:
        job: dict[str, Any] = {
            "src": str(src),
            "out": str(tmp),
            "ftype": QUANT_TYPES[qtype],
            "nthread": threads or 0,
            "output_type": tensor_type(overrides.output) if overrides.output else None,
            "embedding_type": tensor_type(overrides.token_embedding) if overrides.token_embedding else None,
            "rules": [[p, tensor_type(t)] for p, t in overrides.tensors],
            "allow_requantize": allow_requantize,
            "kv": kv_strings(metadata or {}),
            "imatrix": None,
        }
        if imatrix is not None:
            from edgekit.compress.imatrix import write_imatrix

            job["imatrix"] = str(write_imatrix(imatrix, Path(work) / "imatrix.gguf"))
        (runner or run_quantizer)(job, src, progress, timeout)
        os.chmod(tmp, new_file_mode())  # the temporary file was created private
    return Path(out)


def run_quantizer(job: dict[str, Any], src: Path, progress: ProgressFn, timeout: float) -> None:
    """Run one quantization ``job`` (what ``quantize_gguf`` built) in a child process, reporting its
    per-tensor progress; a crash, a full disk or a timeout becomes an edgekit error."""
    # stderr goes to a file: a chatty child must never block on a full pipe nobody reads until the end
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "edgekit.compress.passes.gguf_quantize"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=native_env(),
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(job))
            proc.stdin.close()
            for line in proc.stdout:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "tensor":
                    progress("quantize", int(parts[1]), int(parts[2]))
            proc.wait(timeout=timeout)
        except BaseException:  # Ctrl-C or a timeout: stop the child before the output is cleaned up
            proc.kill()
            proc.wait()
            raise
        stderr.seek(0)
        err = stderr.read()
    if proc.returncode == 0:
        return
    last = last_line(err)
    if any(sign in err for sign in _WRITE_FAILED):
        raise DiskFullError(
            f"writing the quantized model failed (disk full or file size limit): {last}",
            "Free space on the output's disk (or write elsewhere with out=PATH) and run again.",
        )
    if proc.returncode < 0:
        raise BackendError(f"llama.cpp's quantizer crashed on {src} (signal {-proc.returncode}): {last}")
    raise ModelFileError(f"llama.cpp could not quantize {src}: {last}")


# --- the child ------------------------------------------------------------------------------------


def _child() -> int:
    import ctypes

    import llama_cpp

    job = json.loads(sys.stdin.read())
    log: list[str] = []
    tensor = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: Any) -> None:
        m = tensor.search(text or b"")
        if m:
            print(f"tensor {int(m[1])} {int(m[2])}", flush=True)
        elif text and text.strip():
            log.append(text.decode("utf-8", errors="replace").rstrip())

    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = job["nthread"]
    params.ftype = job["ftype"]
    params.allow_requantize = job["allow_requantize"]
    if job["output_type"] is not None:
        params.output_tensor_type = job["output_type"]
    if job["embedding_type"] is not None:
        params.token_embedding_type = job["embedding_type"]
    keep: list[Any] = []  # everything a pointer in params refers to stays alive until the call returns
    if job["rules"]:
        patterns = [p.encode() for p, _ in job["rules"]]
        rules = (llama_cpp.llama_model_tensor_override * (len(patterns) + 1))()
        for i, (pattern, (_, t)) in enumerate(zip(patterns, job["rules"], strict=True)):
            rules[i].pattern, rules[i].type = pattern, t
        keep += [patterns, rules]
        params.tt_overrides = ctypes.cast(rules, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    if job["kv"]:
        kvs = (llama_cpp.llama_model_kv_override * (len(job["kv"]) + 1))()
        for i, (key, value) in enumerate(job["kv"].items()):
            kvs[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            kvs[i].key = key.encode()
            kvs[i].value.val_str = value.encode()  # type: ignore[union-attr]
        keep.append(kvs)
        params.kv_overrides = ctypes.cast(kvs, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    if job["imatrix"]:
        from edgekit.compress.imatrix import read_imatrix

        data = read_imatrix(job["imatrix"]).to_quantize_params()
        keep.append(data)
        params.imatrix = data.pointer
    rc = llama_cpp.llama_model_quantize(job["src"].encode(), job["out"].encode(), ctypes.byref(params))
    if rc != 0:
        errors = [ln for ln in log if "error" in ln.lower() or "failed" in ln.lower()] or log or ["no log"]
        print(f"llama_model_quantize returned {rc}: {errors[-1]}", file=sys.stderr)
        return 7
    return 0


if __name__ == "__main__":
    sys.exit(_child())


class QuantizeGGUF:
    """The pipeline's ``gguf`` step: GGUF (+ importance matrix) -> quantized GGUF with provenance in its
    metadata."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.imatrix import check_imatrix, read_imatrix

        target = ctx.step.target
        assert target is not None
        imatrix = None
        if "imatrix" in ctx.inputs:
            imatrix = read_imatrix(ctx.inputs["imatrix"])
            check_imatrix(imatrix, ctx.inputs["model"])  # llama.cpp skips entries that name no tensor
        quantize_gguf(
            ctx.inputs["model"],
            ctx.out,
            target.type,
            overrides=target.overrides,
            imatrix=imatrix,
            metadata=ctx.provenance.gguf_metadata() if ctx.provenance else None,
            allow_requantize=bool(ctx.step.config.get("allow_requantize")),
            threads=ctx.settings.threads,
            progress=ctx.progress,
        )
