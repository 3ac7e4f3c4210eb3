"""ONNX causal LM -> int8 dynamic, int8 static (QDQ) or int4 weight-only, with onnxruntime.quantization.

- ``int8-dynamic``: int8 per-channel weights; activations quantized per call at run time. No data needed.
- ``int8-static``: QDQ format; activation ranges measured beforehand by running the float model on a
  calibration set (``CalibrationFeeds``: real tokenized texts, each fed twice, once from an empty KV
  cache and once on top of the KV cache its first half produced, so the ranges cover decoding too).
- ``int4``: weight-only ``MatMulNBits`` (blocks of ``block_size`` input columns, one scale per block),
  activations stay float. Needs ``onnx_ir``.

Only the weight MatMuls are quantized: attention's activation x activation MatMuls stay float, and so do
the MLP down projections in the int8 modes. Their inputs carry the large outlier activations of small
LLMs; one per-tensor int8 range for them cost the default model most of its accuracy (mean KLD against
its GGUF 0.67 with them quantized, 0.07 without; tools/bench_onnx.py). int4 is weight-only, so it
quantizes every weight MatMul.

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
KEEP_FLOAT = ("down_proj",)  # MatMuls whose names contain these stay float in the int8 modes (see above)
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
    require("onnx", "onnxruntime.quantization", extra=ONNX_EXTRA)
    if mode == "int4":
        require("onnx_ir", extra=ONNX_EXTRA)
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


def weight_matmuls(model_path: Path, *, keep_float: Sequence[str] = KEEP_FLOAT) -> list[str]:
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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=True,
            # 7-bit weights: on x86-64 without VNNI, onnxruntime's uint8 x int8 kernel sums pairs of
            # products in int16 and saturates with full-range int8 weights (the 135M model answered
            # garbage on an AVX2 CPU); 7 bits cannot overflow there and cost little anywhere
            reduce_range=True,
            nodes_to_quantize=weight_matmuls(src),
            op_types_to_quantize=["MatMul"],
            use_external_data_format=external,
        )
    except (ValueError, RuntimeError, KeyError) as e:
        raise _failed(src, e) from None


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
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=weight_matmuls(src),
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            use_external_data_format=external,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    except (ValueError, RuntimeError, KeyError) as e:
        raise _failed(src, e) from None


def _int4(src: Path, dst: Path, block_size: int, external: bool) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    try:
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(src)), bits=4, block_size=block_size, is_symmetric=True
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(dst), use_external_data_format=external)
    except (ValueError, RuntimeError, KeyError) as e:
        raise _failed(src, e) from None


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
