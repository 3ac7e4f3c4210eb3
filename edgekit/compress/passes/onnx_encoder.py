"""Sentence encoder (Hugging Face folder, BERT-like) -> ONNX feature extractor, optionally int8.

The export is optimum-onnx's ``feature-extraction`` task (inputs: input_ids, attention_mask,
token_type_ids; output: last_hidden_state); pooling stays outside the graph so callers can mean-pool with
the attention mask exactly like sentence-transformers. ``int8`` then applies onnxruntime's dynamic int8
quantization (weights int8 per output channel, activations quantized per batch at run time): a quarter of
the size and faster on CPUs. On all-MiniLM-L6-v2 the pooled embeddings keep a cosine similarity of about
0.99 to float32 ones (per-tensor weights: about 0.95).

The output folder holds ``model.onnx``, the tokenizer files and ``edgekit-encoder.json`` (what was done),
and is written atomically: an interrupted export never leaves a partial folder under its final name.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.compress.hf import require
from edgekit.errors import ModelFileError
from edgekit.files import atomic_output

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext

ONNX_EXTRA = "pip install 'edgekit[onnx-export]' torch==2.13.0"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "config.json",
)


def export_encoder(hf_dir: Path, out_dir: Path, *, int8: bool = True) -> Path:
    """Export the encoder in ``hf_dir`` to ``out_dir/model.onnx`` (int8 when ``int8``); return ``out_dir``."""
    require("torch", "transformers", "optimum.exporters.onnx", "onnx", extra=ONNX_EXTRA)
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / "config.json").is_file():
        raise ModelFileError(
            f"{hf_dir}: not a Hugging Face model folder (no config.json)",
            "Point at the folder with config.json and the weights (e.g. 'edgekit pull all-minilm-l6-v2').",
        )
    from optimum.exporters.onnx import main_export

    with atomic_output(out_dir, folder=True) as tmp:
        raw = tmp / "fp32"
        try:
            with warnings.catch_warnings():
                # torch's tracer and transformers warn about export internals the user cannot act on.
                warnings.simplefilter("ignore")
                main_export(
                    str(hf_dir),
                    output=str(raw),
                    task="feature-extraction",
                    library_name="transformers",
                    device="cpu",
                )
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise ModelFileError(
                f"{hf_dir}: ONNX export failed ({str(e).splitlines()[0][:200]})",
                "Use an encoder architecture optimum-onnx supports (BERT, MiniLM, MPNet, RoBERTa, ...).",
            ) from None
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            from edgekit.compress.passes.onnx_quantize import quiet_root_logger

            with warnings.catch_warnings(), quiet_root_logger():
                warnings.simplefilter("ignore")
                quantize_dynamic(
                    str(raw / "model.onnx"),
                    str(tmp / "model.onnx"),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    reduce_range=True,  # 7-bit weights: the same embeddings on x86-64 without VNNI
                )
        else:
            shutil.copy2(raw / "model.onnx", tmp / "model.onnx")
        for name in TOKENIZER_FILES:
            for src in (raw / name, hf_dir / name):
                if src.is_file():
                    shutil.copy2(src, tmp / name)
                    break
        shutil.rmtree(raw)
        (tmp / "edgekit-encoder.json").write_text(
            json.dumps({"task": "feature-extraction", "int8": int8, "pooling": "mean"}, indent=2) + "\n"
        )
    return out_dir


class ExportEncoder:
    """The pipeline's ``encoder`` step: an encoder's Hugging Face folder -> ONNX feature extractor (fp32,
    or int8 for an ``int8`` target) through optimum-onnx."""

    def run(self, ctx: StepContext) -> None:
        target = ctx.step.target
        assert target is not None
        export_encoder(ctx.inputs["model"], ctx.out, int8=target.type == "int8")
