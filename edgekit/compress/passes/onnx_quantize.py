"""ONNX causal LM -> int8 dynamic, int8 static or int4, with onnxruntime.quantization.

- ``int8-dynamic``: ``MatMulNBits`` with 8-bit weights (symmetric, one scale per block of 32 input
  columns); the kernel quantizes activations to int8 per block as it runs (onnxruntime's accuracy level
  4). No data needed. Its drift from the GGUF it came from is Q8_0's (tools/bench_onnx.py).
- ``int8-static``: ``QLinearMatMul`` (QOperator format: onnxruntime's fused int8 kernels; the QDQ format
  decoded at about an eighth of the speed); activation ranges measured beforehand by running the float
  model on a calibration set (``CalibrationFeeds``: real tokenized texts, each fed twice, once from an
  empty KV cache and once on top of the KV cache its first half produced, so the ranges cover decoding
  too).
  Weights are 7-bit (``reduce_range``): the uint8 x int8 kernel sums pairs of products in int16 on x86-64
  CPUs without VNNI, and full-range weights saturate there. The MLP down projections and the output
  projection get int8-dynamic's ``MatMulNBits`` instead (see below).
- ``int4``: ``MatMulNBits`` with 4-bit weights (blocks of ``block_size`` input columns, one scale per
  block), activations quantized per block as for int8-dynamic; the output projection and the MLP down
  projections get 8-bit weights, as llama.cpp's Q4_K_M keeps them at higher precision (in a one-off
  comparison on the default model: mean KLD 0.22 against 0.33 with only the output projection in 8 bits
  and 0.40 all in 4 bits; 1.48x, 1.58x and 1.55x the tok/s of its Q4_K_M GGUF).

All modes need ``onnx_ir`` (onnxruntime's ``MatMulNBits`` quantizer). Only the weight MatMuls are
quantized (attention's activation x activation products stay float). The inputs of the MLP down
projections carry the large outlier activations of small LLMs: one per-tensor int8 range for them cost
the default model most of its accuracy (mean KLD against its GGUF 0.67 with them quantized, 0.07 kept
float; tools/bench_onnx.py), so int8-static gives them, and the output projection, ``MatMulNBits``'s
per-block activations (``STATIC_PER_BLOCK``). A token embedding tied to the output projection then reads
the projection's quantized weights (``share_tied_embedding``) in every mode, instead of keeping a float
copy.

Outputs are written atomically next to copies of the source's tokenizer and config files.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgekit.compress.hf import require
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, no_progress

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext


MODES = ("int8-dynamic", "int8-static", "int4")
ONNX_EXTRA = "pip install 'edgekit[onnx-export]' torch==2.13.0"
# MatMulNBits multiplies int8-quantized activations by the 4- or 8-bit weights (onnxruntime's accuracy
# level 4, onnxruntime-genai's CPU default): about 1.3x the tok/s of float activations for int4 here.
NBITS_ACCURACY_LEVEL = 4
INT4_KEEP_8BIT = ("lm_head", "down_proj")  # MatMuls of an int4 build whose names contain these: 8 bits
GRAPH_LAYOUT = 2
"""Part of a causal LM target's cache key: bumped when the same options start writing other bytes
(2: a tied embedding reads the quantized output projection, and int8-static's down and output
projections are MatMulNBits)."""
# MatMuls whose names contain these get per-block MatMulNBits weights in int8-static, not one activation
# range per tensor (see above)
STATIC_PER_BLOCK = ("down_proj", "lm_head")
# onnx files over this size are saved with external data (protobuf's limit is 2 GB).
EXTERNAL_DATA_BYTES = 1_800_000_000
MIN_CALIBRATION_TOKENS = 8
MAX_CALIBRATION_TOKENS = 128


class CalibrationTexts(Protocol):
    """What static quantization reads from a calibration set (``calibration.CalibrationSet`` has it)."""

    @property
    def texts(self) -> Sequence[str]: ...

    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class TextSet:
    """A calibration set given as plain texts; ``sha256`` hashes them joined by NUL characters."""

    texts: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\0".join(self.texts).encode("utf-8")).hexdigest()


def as_calibration(data: CalibrationTexts | Sequence[str] | None) -> CalibrationTexts | None:
    if data is None or isinstance(data, str):
        return None if data is None else TextSet((data,))
    if hasattr(data, "texts") and hasattr(data, "sha256"):
        return data
    return TextSet(tuple(str(t) for t in data))


@contextmanager
def quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization configures the root logger (``logging.basicConfig`` on import, module-level
    ``logging.warning`` calls); the library must leave the application's logging as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    guard = logging.NullHandler()  # a handler on root turns basicConfig into a no-op
    root.addHandler(guard)
    try:
        yield
    finally:
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)


def model_file(onnx_dir: Path) -> Path:
    path = Path(onnx_dir) / "model.onnx"
    if not path.is_file():
        raise InputError(
            f"{onnx_dir}: no model.onnx",
            "Point at a folder written by the ONNX export (edgekit.compress.onnx.to_onnx with mode 'fp32').",
        )
    return path


def check_mode(mode: str, calibration: CalibrationTexts | None, block_size: int) -> None:
    if mode not in MODES:
        raise InputError(f"unknown ONNX quantization mode {mode!r}", f"Use one of: {', '.join(MODES)}.")
    if mode == "int8-static" and (calibration is None or not any(t.strip() for t in calibration.texts)):
        raise InputError(
            "int8-static needs calibration data to measure activation ranges",
            "Pass a calibration text set (--calibration recipes/data/...), or use int8-dynamic.",
        )
    if mode == "int4" and (block_size < 16 or block_size & (block_size - 1)):
        raise InputError(
            f"block size {block_size} is not a power of two of at least 16", "Use 16, 32, 64 or 128."
        )


def quantize_onnx(
    onnx_dir: Path,
    out_dir: Path,
    mode: str,
    *,
    calibration: CalibrationTexts | Sequence[str] | None = None,
    block_size: int = 32,
    progress: ProgressFn | None = None,
) -> Path:
    """Quantize the ONNX causal LM in ``onnx_dir`` into ``out_dir`` (written atomically); returns it."""
    cal = as_calibration(calibration)
    check_mode(mode, cal, block_size)
    src = model_file(Path(onnx_dir))
    require("onnx", "onnxruntime.quantization", "onnx_ir", extra=ONNX_EXTRA)
    report = progress or no_progress
    out_dir = Path(out_dir)
    with atomic_output(out_dir, folder=True) as tmp, quiet_root_logger():
        report("quantize", 0, 1)
        dst = tmp / "model.onnx"
        external = _graph_bytes(src.parent) > EXTERNAL_DATA_BYTES
        if mode == "int4":
            _int4(src, dst, block_size, external)
        elif mode == "int8-dynamic":
            _int8_dynamic(src, dst, external)
        else:
            assert cal is not None
            _int8_static(src, dst, cal, external, report)
        _copy_side_files(src.parent, tmp)
        report("quantize", 1, 1)
    return out_dir


def _graph_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name.startswith("model.onnx"))


def _copy_side_files(src: Path, dst: Path) -> None:
    for p in src.iterdir():
        if p.is_file() and not p.name.startswith("model.onnx") and p.suffix != ".onnx":
            shutil.copy2(p, dst / p.name)


def weight_matmuls(model_path: Path, *, keep_float: Sequence[str] = STATIC_PER_BLOCK) -> list[str]:
    """Names of the MatMul nodes whose second input is a weight (an initializer), minus ``keep_float``."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and len(n.input) == 2
        and n.input[1] in weights
        and not any(k in n.name for k in keep_float)
    ]


def _failed(src: Path, e: Exception) -> ModelFileError:
    detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)
    return ModelFileError(
        f"{src}: onnxruntime could not quantize this graph ({detail})",
        "Quantize an ONNX causal LM written by the export step; run with EDGEKIT_DEBUG=1 for details.",
    )


def _int8_dynamic(src: Path, dst: Path, external: bool) -> None:
    _nbits(src, dst, external, [(8, 32, ())])


def _int8_static(src: Path, dst: Path, cal: CalibrationTexts, external: bool, report: ProgressFn) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = CalibrationFeeds(src, cal.texts, progress=report)
    if not reader.feeds:
        raise InputError(
            f"the calibration set has no text of at least {MIN_CALIBRATION_TOKENS} tokens",
            "Use a calibration set of realistic prompts and answers (a few sentences each).",
        )
    try:
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QOperator,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=weight_matmuls(src),
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            use_external_data_format=external,
            extra_options={"WeightSymmetric": True},
        )
    except (ValueError, RuntimeError, KeyError) as e:
        raise _failed(src, e) from None
    _nbits(dst, dst, external, [(8, 32, ())])  # the weight MatMuls left float: down and output projections


def _int4(src: Path, dst: Path, block_size: int, external: bool) -> None:
    _nbits(src, dst, external, [(4, block_size, INT4_KEEP_8BIT), (8, block_size, ())])


def _nbits(src: Path, dst: Path, external: bool, passes: Sequence[tuple[int, int, Sequence[str]]]) -> None:
    """``MatMulNBits`` weights, one quantizer pass per (bits, block size, name parts it leaves for a later
    pass); each pass takes the weight MatMuls the earlier ones left."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    try:
        model = onnx.load(str(src))
        for bits, block, later in passes:
            quantizer = MatMulNBitsQuantizer(
                model,
                bits=bits,
                block_size=block,
                is_symmetric=True,
                accuracy_level=NBITS_ACCURACY_LEVEL,
                nodes_to_exclude=[n.name for n in model.graph.node if any(k in n.name for k in later)],
            )
            quantizer.process()
            model = quantizer.model.model
        share_tied_embedding(model)
        onnx.save(model, str(dst), save_as_external_data=external, location="model.onnx_data")
    except (ValueError, RuntimeError, KeyError) as e:
        raise _failed(src, e) from None


def share_tied_embedding(model: Any) -> bool:
    """Point a tied token embedding at the output projection's quantized weights.

    A model whose embedding is the output projection's weight (tied, as most small LLMs) is exported as
    ``Gather(Transpose(W))`` beside ``MatMul(x, W)``. Once the MatMul is ``MatMulNBits``, the float ``W``
    stays only for the Gather: on disk (113 MB for the default model) and, transposed when the session
    loads, a second time in memory. This reads the same rows from the quantized weights instead, with
    ``GatherBlockQuantized`` (same bits, blocks and scales; the implicit zero point of symmetric
    ``MatMulNBits``), and drops ``W``. Returns whether the graph had such an embedding.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    for gather in graph.node:
        if gather.op_type != "Gather" or gather.input[0] not in producers:
            continue
        transpose = producers[gather.input[0]]
        tied = transpose.input[0] if transpose.op_type == "Transpose" else None
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
        if tied not in weights or perm != [1, 0]:
            continue
        users = [n for n in graph.node if tied in n.input]
        packed = {f"{tied}_Q{b}" for b in (4, 8)}  # onnxruntime's quantizer names them so
        matmul = next((n for n in graph.node if n.op_type == "MatMulNBits" and n.input[1] in packed), None)
        if users != [transpose] or matmul is None or len(matmul.input) > 3:
            continue  # W still used elsewhere, no quantized projection, or zero points (not written here)
        attrs = {a.name: helper.get_attribute_value(a) for a in matmul.attribute}
        n_rows, width, bits = attrs["N"], attrs["K"], attrs["bits"]
        if width % attrs["block_size"]:
            continue
        base = gather.name.rsplit("/", 1)[0] if "/" in gather.name else gather.name
        shape = helper.make_tensor(f"{base}/rows_shape", TensorProto.INT64, [2], [n_rows, width * bits // 8])
        reshape = helper.make_node(
            "Reshape", [matmul.input[1], shape.name], [f"{base}/Reshape/output_0"], name=f"{base}/Reshape"
        )
        quantized = helper.make_node(
            "GatherBlockQuantized",
            [reshape.output[0], gather.input[1], matmul.input[2]],
            list(gather.output),
            name=f"{base}/GatherBlockQuantized",
            domain="com.microsoft",
            bits=bits,
            block_size=attrs["block_size"],
            gather_axis=0,
            quantize_axis=1,
        )
        nodes = [n for n in graph.node if n is not transpose]
        at = next(i for i, n in enumerate(nodes) if n is gather)
        nodes[at : at + 1] = [reshape, quantized]
        del graph.node[:]
        graph.node.extend(nodes)
        graph.initializer.remove(weights[tied])
        graph.initializer.append(shape)
        return True
    return False


class CalibrationFeeds:
    """An onnxruntime ``CalibrationDataReader`` over real tokenized calibration texts.

    Each text (at most ``MAX_CALIBRATION_TOKENS`` tokens) gives two feeds: its first half from an empty KV
    cache, then its second half with the past key values the float model computed for the first half, so
    the measured ranges include the ``past_key_values`` inputs and the attention over a real cache.
    The inputs are built by edgekit's ONNX backend, the same way generation feeds the graph.
    """

    def __init__(self, model_path: Path, texts: Sequence[str], *, progress: ProgressFn = no_progress) -> None:
        from edgekit.runtime.onnx import OnnxBackend

        backend = OnnxBackend(model_path.parent, threads=None)
        self.feeds: list[dict[str, np.ndarray]] = []
        usable = [t for t in texts if t.strip()]
        try:
            for i, text in enumerate(usable):
                progress("calibrate", i, len(usable))
                _, ids = backend.text_tokens(text)
                ids = ids[:MAX_CALIBRATION_TOKENS]
                if len(ids) < MIN_CALIBRATION_TOKENS:
                    continue
                half = len(ids) // 2
                state = backend.new_state()
                self.feeds.append(backend.graph_feeds(state, ids[:half]))
                backend.advance(state, ids[:half])
                self.feeds.append(backend.graph_feeds(state, ids[half:]))
            progress("calibrate", len(usable), len(usable))
        finally:
            backend.close()
        self._next = iter(self.feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._next, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.feeds)

    def rewind(self) -> None:
        self._next = iter(self.feeds)


class QuantizeONNX:
    """The pipeline's ``onnx`` step: float ONNX folder (+ calibration text for int8-static) -> quantized
    ONNX folder."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.calibration import load_calibration

        target = ctx.step.target
        assert target is not None
        calibration = load_calibration(ctx.inputs["calibration"]) if "calibration" in ctx.inputs else None
        quantize_onnx(
            ctx.inputs["model"],
            ctx.out,
            target.type,
            calibration=calibration,
            block_size=target.block_size or 32,
            progress=ctx.progress,
        )
