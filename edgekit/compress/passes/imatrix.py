"""Compute an importance matrix on device with llama.cpp's graph eval callback.

The calibration text is tokenized, cut into ``n_ctx``-token windows (each from an empty context, the
first token BOS where the vocabulary asks for one) and decoded by llama.cpp. The scheduler's eval
callback (``cb_eval`` in the context parameters) is asked about every graph node; for each matrix
multiplication by a ``blk.*`` weight it hands over the input activations (``src[1]``), whose squares are
summed per input column, like llama.cpp's ``llama-imatrix``. The names are the GGUF tensor names the
quantizer looks up, with no mapping step, and no PyTorch is needed: the F16 GGUF the quantizer reads is
the model that is measured.

The work runs in a child process (``python -c``, so callers need no ``__main__`` guard). The callback
reads ggml's tensor struct through ctypes; a layout mismatch or a native abort inside llama.cpp then ends
the child, not the caller, and comes back as a ``BackendError``. A Python exception inside the callback
is caught there (ctypes would only print it), stops the graph, and is raised again after the decode.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.compress.calibration import CalibrationSet
from edgekit.compress.imatrix import Imatrix
from edgekit.errors import BackendError, EdgekitError, InputError, ModelFileError
from edgekit.files import ProgressFn, no_progress

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext


MIN_ROWS = 16  # like llama-imatrix: skip tiny batches (the last-token logits matmul)
MIN_WINDOW = 64  # a last partial window shorter than this is dropped


def compute_imatrix(
    model_path: str | Path,
    calibration: CalibrationSet,
    *,
    n_ctx: int = 512,
    threads: int | None = None,
    max_chunks: int | None = None,
    progress: ProgressFn | None = None,
) -> Imatrix:
    """Activation statistics of ``model_path`` (a GGUF, ideally the F16 one about to be quantized) over
    ``calibration``, in ``n_ctx``-token windows (at most ``max_chunks`` of them). ``progress`` hears the
    stage "imatrix" with windows done and total."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"{model_path}: no such GGUF file")
    if n_ctx < MIN_WINDOW:
        raise InputError(f"n_ctx {n_ctx} is too small for activation statistics; use {MIN_WINDOW} or more")
    report = progress or no_progress
    with tempfile.TemporaryDirectory(prefix="edgekit-imatrix-") as tmp:
        job = Path(tmp) / "job.json"
        out = Path(tmp) / "imatrix.npz"
        job.write_text(
            json.dumps(
                {
                    "model": str(model_path),
                    "texts": list(calibration.texts),
                    "n_ctx": n_ctx,
                    "threads": threads,
                    "max_chunks": max_chunks,
                    "out": str(out),
                }
            ),
            encoding="utf-8",
        )
        code = "from edgekit.compress.passes.imatrix import _child_main; _child_main()"
        debug = bool(os.environ.get("EDGEKIT_DEBUG"))
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(job)],
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "progress":
                    report("imatrix", int(parts[1]), int(parts[2]))
        finally:
            proc.stdout.close()
            rc = proc.wait()
        error = out.with_suffix(".error.json")
        if error.is_file():
            raise _rebuild(*json.loads(error.read_text(encoding="utf-8")))
        if rc != 0 or not out.is_file():
            raise BackendError(
                f"llama.cpp stopped while computing the importance matrix (exit code {rc})",
                "The model file may be damaged or its tokenizer broken; run 'edgekit models verify' or "
                "rebuild it, and try again with EDGEKIT_DEBUG=1.",
            )
        return _load_npz(out, calibration.name)


def _rebuild(cls_name: str, message: str, hint: str) -> EdgekitError:
    import edgekit.errors as errors

    cls = getattr(errors, cls_name, None)
    if isinstance(cls, type) and issubclass(cls, EdgekitError):
        return cls(message, hint)
    return BackendError(f"computing the importance matrix failed: {message}", hint or None)


def _load_npz(path: Path, dataset: str) -> Imatrix:
    with np.load(path) as data:
        names = [str(n) for n in data["names"]]
        chunks, chunk_size = (int(x) for x in data["meta"])
        values = {n: data[f"v{i}"].astype(np.float32) for i, n in enumerate(names)}
        counts = {n: data[f"c{i}"].astype(np.float32) for i, n in enumerate(names)}
    return Imatrix(values, counts, chunks, chunk_size, (dataset,))


# --- in the child process ----------------------------------------------------------------------------


def _child_main() -> None:
    """Entry point of the child process: read the job, collect, write the sums or the error."""
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(job["out"])
    # llama.cpp logs to stdout/stderr; progress goes to the pipe the parent reads, llama.cpp's to nowhere.
    pipe = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)

    def tick(done: int, total: int) -> None:
        pipe.write(f"progress {done} {total}\n")

    try:
        stats = _collect(
            job["model"], tuple(job["texts"]), job["n_ctx"], job["threads"], job["max_chunks"], tick
        )
        names = sorted(stats.sums)
        arrays: dict[str, Any] = {"names": np.array(names), "meta": np.array([stats.chunks, job["n_ctx"]])}
        for i, n in enumerate(names):
            arrays[f"v{i}"] = (stats.sums[n] / np.repeat(stats.counts[n], stats.cols[n])).astype(np.float32)
            arrays[f"c{i}"] = stats.counts[n].astype(np.float32)
        with open(out, "wb") as f:
            np.savez(f, **arrays)
    except EdgekitError as e:
        _write_error(out, [type(e).__name__, e.message, e.hint])
    except Exception as e:
        _write_error(out, ["", f"{type(e).__name__}: {e}", ""])
    finally:
        pipe.close()


def _write_error(out: Path, error: list[str]) -> None:
    out.with_suffix(".error.json").write_text(json.dumps(error), encoding="utf-8")


class _Tensor(ctypes.Structure):
    """ggml.h's struct ggml_tensor (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10, name 64)."""


_Tensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * 4),
    ("nb", ctypes.c_size_t * 4),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * 16),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(_Tensor) * 10),
    ("view_src", ctypes.POINTER(_Tensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * 64),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]

GGML_TYPE_F32 = 0


def _ggml() -> ctypes.CDLL:
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        if (lib_dir / name).exists():
            lib = ctypes.CDLL(str(lib_dir / name))
            break
    else:
        raise BackendError("llama-cpp-python's ggml library was not found next to it")
    lib.ggml_op_name.restype = ctypes.c_char_p
    lib.ggml_op_name.argtypes = [ctypes.c_int]
    lib.ggml_get_name.restype = ctypes.c_void_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
    lib.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return lib


def _op_ids(lib: ctypes.CDLL) -> tuple[int, int]:
    """GGML_OP_MUL_MAT and GGML_OP_MUL_MAT_ID, looked up by name (the enum moves between versions)."""
    found: dict[bytes, int] = {}
    for i in range(1, 128):  # both sit early in the enum; stop before reading past its end
        name = lib.ggml_op_name(i)
        if name in (b"MUL_MAT", b"MUL_MAT_ID"):
            found[name] = i
        if len(found) == 2:
            return found[b"MUL_MAT"], found[b"MUL_MAT_ID"]
    raise BackendError("this llama.cpp build has no MUL_MAT op under that name")


class _Stats:
    """Running sums per weight tensor; also the eval callback."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.mul_mat, self.mul_mat_id = _op_ids(lib)
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.cols: dict[str, int] = {}
        self.chunks = 0
        self.error: BaseException | None = None
        self.moe = False
        self.checked = False

    def callback(self, t_ptr: int, ask: bool, user_data: Any) -> bool:
        try:
            return self._callback(t_ptr, ask)
        except BaseException as e:  # never let an exception unwind into C
            self.error = self.error or e
            return False

    def _callback(self, t_ptr: int, ask: bool) -> bool:
        t = _Tensor.from_address(t_ptr)
        if not self.checked:
            if self.lib.ggml_get_name(t_ptr) != t_ptr + _Tensor.name.offset:
                raise BackendError("ggml's tensor layout is not the one edgekit reads; update edgekit")
            self.checked = True
        if t.op == self.mul_mat_id:
            self.moe = True
            return False
        if t.op != self.mul_mat or not t.src[0] or not t.src[1]:
            return False
        src0, src1 = t.src[0].contents, t.src[1].contents
        name = _weight_name(src0.name)
        if not name.startswith("blk."):
            return False
        if ask:
            return src1.ne[1] >= MIN_ROWS and src1.type == GGML_TYPE_F32
        self._add(name, src0, src1)
        return True

    def _add(self, name: str, src0: _Tensor, src1: _Tensor) -> None:
        cols = int(src1.ne[0])
        if int(src1.nb[0]) != 4:
            raise BackendError(f"{name}: activations are not packed float32")
        x = self._read(src1)  # [ne3, ne2, ne1, ne0]
        n2, n3 = int(src0.ne[2]), int(src0.ne[3])
        n_mat = n2 * n3
        if name not in self.sums:
            self.sums[name] = np.zeros(cols * n_mat, dtype=np.float64)
            self.counts[name] = np.zeros(n_mat, dtype=np.float64)
            self.cols[name] = cols
        elif self.cols[name] != cols or self.counts[name].size != n_mat:
            raise BackendError(f"{name}: inconsistent activation shape between calls")
        sq = np.square(x, dtype=np.float64)
        for i3 in range(x.shape[0]):
            for i2 in range(x.shape[1]):
                mat = (i3 % n3) * n2 + (i2 % n2)
                self.sums[name][mat * cols : (mat + 1) * cols] += sq[i3, i2].sum(axis=0)
                self.counts[name][mat] += x.shape[2]
        if not np.all(np.isfinite(self.sums[name])):
            raise BackendError(f"{name}: non-finite activations; the model file may be damaged")

    def _read(self, t: _Tensor) -> np.ndarray:
        nbytes = int(self.lib.ggml_nbytes(ctypes.addressof(t)))
        if not t.buffer or self.lib.ggml_backend_buffer_is_host(t.buffer):  # no buffer: context memory
            raw = (ctypes.c_char * nbytes).from_address(t.data)
        else:
            raw = ctypes.create_string_buffer(nbytes)
            self.lib.ggml_backend_tensor_get(ctypes.addressof(t), raw, 0, nbytes)
        shape = tuple(int(t.ne[i]) for i in (3, 2, 1, 0))
        strides = tuple(int(t.nb[i]) for i in (3, 2, 1, 0))
        return np.ndarray(shape, dtype=np.float32, buffer=memoryview(raw), strides=strides).copy()


def _weight_name(raw: bytes) -> str:
    # Backends may decorate names ("CUDA0#blk.0.attn_k.weight#0"); keep the middle part.
    name = raw.decode("utf-8", errors="replace")
    parts = name.split("#")
    return parts[1] if len(parts) == 3 else name


def _collect(
    model_path: str,
    texts: tuple[str, ...],
    n_ctx: int,
    threads: int | None,
    max_chunks: int | None,
    tick: Callable[[int, int], None],
) -> _Stats:
    import llama_cpp as lc

    from edgekit.config import Settings, default_threads

    lib = _ggml()
    stats = _Stats(lib)
    lc.llama_backend_init()
    mparams = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(model_path.encode(), mparams)
    if not model:
        raise ModelFileError(f"llama.cpp could not load {model_path}")
    try:
        vocab = lc.llama_model_get_vocab(model)
        windows = _windows(lc, vocab, "\n\n".join(texts), n_ctx, max_chunks)
        cb = lc.ggml_backend_sched_eval_callback(stats.callback)
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
        cparams.n_seq_max = 1
        n_threads = threads or Settings.from_env().threads or default_threads()
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.cb_eval = cb
        cparams.cb_eval_user_data = None
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            raise BackendError("llama.cpp could not create a context for the importance matrix")
        # Every position asks for logits: llama.cpp otherwise drops the unused rows before the last
        # block's attention output and feed-forward, and those tensors would see a single token.
        batch = lc.llama_batch_init(n_ctx, 0, 1)
        try:
            mem = lc.llama_get_memory(ctx)
            tick(0, len(windows))
            for i, window in enumerate(windows):
                lc.llama_memory_clear(mem, True)
                _fill(batch, window)
                rc = lc.llama_decode(ctx, batch)
                if stats.error is not None:
                    raise stats.error
                if rc != 0:
                    raise BackendError(f"llama.cpp failed to decode calibration window {i} (code {rc})")
                stats.chunks += 1
                tick(i + 1, len(windows))
        finally:
            lc.llama_batch_free(batch)
            lc.llama_free(ctx)
    finally:
        lc.llama_model_free(model)
    if stats.moe:
        raise InputError(
            "importance matrices for mixture-of-experts models are not supported yet",
            "Quantize this model without calibration text, or bring an imatrix made by llama-imatrix.",
        )
    if not stats.sums:
        raise BackendError("no activations were collected: the model has no blk.* matrix multiplications")
    return stats


def _fill(batch: Any, tokens: list[int]) -> None:
    batch.n_tokens = len(tokens)
    for pos, tok in enumerate(tokens):
        batch.token[pos] = tok
        batch.pos[pos] = pos
        batch.n_seq_id[pos] = 1
        batch.seq_id[pos][0] = 0
        batch.logits[pos] = True


def _windows(lc: Any, vocab: Any, text: str, n_ctx: int, max_chunks: int | None) -> list[list[int]]:
    raw = text.encode("utf-8")
    cap = len(raw) + 16
    buf = (lc.llama_token * cap)()
    n = lc.llama_tokenize(vocab, raw, len(raw), buf, cap, False, True)
    if n < 0:
        raise BackendError("llama.cpp could not tokenize the calibration text")
    tokens = list(buf[:n])
    bos = lc.llama_vocab_bos(vocab) if lc.llama_vocab_get_add_bos(vocab) else -1
    step = n_ctx - 1 if bos >= 0 else n_ctx
    windows = []
    for start in range(0, len(tokens), step):
        part = tokens[start : start + step]
        if len(part) < MIN_WINDOW:
            break
        windows.append([bos, *part] if bos >= 0 else part)
        if max_chunks is not None and len(windows) >= max_chunks:
            break
    if not windows:
        raise InputError(
            f"the calibration text is {len(tokens)} tokens, fewer than one {MIN_WINDOW}-token window",
            "Add more calibration text.",
        )
    return windows


class ComputeImatrix:
    """The pipeline's ``imatrix`` step: unquantized GGUF + calibration text -> importance matrix (llama.cpp's
    GGUF imatrix format)."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.calibration import load_calibration
        from edgekit.compress.imatrix import write_imatrix

        cfg = ctx.step.config
        imatrix = compute_imatrix(
            ctx.inputs["model"],
            load_calibration(ctx.inputs["calibration"]),
            n_ctx=int(cfg.get("chunk_tokens", 512)),
            max_chunks=cfg.get("max_chunks"),
            threads=ctx.settings.threads,
            progress=ctx.progress,
        )
        write_imatrix(imatrix, ctx.out, legacy=False)
