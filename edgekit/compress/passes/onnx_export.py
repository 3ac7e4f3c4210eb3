"""Hugging Face causal LM -> ONNX folder with past key values, in the layout edgekit's ONNX backend loads.

Two exporters write that layout: one ``model.onnx`` whose inputs are ``input_ids``, ``attention_mask``,
(for optimum) ``position_ids`` and a ``past_key_values.{i}.key/value`` pair per layer (float32,
``[batch, kv_heads, past, head_dim]``, so grouped-query models keep their smaller KV heads), and whose
outputs are ``logits`` and ``present.{i}.key/value``.

- The architectures in ``FUSED_ARCHITECTURES`` go through onnxruntime-genai's model builder (``-p fp32
  -e cpu``, in a child process): a graph of onnxruntime's fused CPU kernels (``GroupQueryAttention``
  with rotary embedding inside, ``SkipSimplifiedLayerNormalization``). For the default model, side by
  side on 2 threads: 1.2x the tok/s of optimum's op-by-op graph in fp32 and 1.8x once quantized to
  int8-dynamic, exported in 6 s against 23 s. Remote code in the folder is never run
  (``hf_remote=false``) and the hub is never asked (``hf_token=false``).
- Any other causal LM goes through optimum-onnx's ``text-generation-with-past`` export, op by op. Its
  own validation (a second forward pass in PyTorch and in onnxruntime) is skipped: it costs as much as the
  export, and every output here is checked by loading it in edgekit's runtime instead.

The tokenizer files, config.json and the chat template are copied alongside, so the folder generates on
its own.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from edgekit.compress.hf import require
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, no_progress
from edgekit.runtime.child import failure, run_module

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext


ONNX_EXTRA = "pip install 'edgekit[onnx-export]' torch==2.13.0"
TASK = "text-generation-with-past"
BUILDER = "onnxruntime_genai.models.builder"
# The builder's architectures whose graphs take exactly the inputs the ONNX backend feeds (the Llama
# family's decoder; SmolLM2 is the one measured here).
FUSED_ARCHITECTURES = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
)
BUILD_TIMEOUT_S = 3600.0
# What the ONNX backend reads besides the graph; copied from the source when the exporter left one out.
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's tracer and deprecation warnings and transformers/optimum log lines say nothing the
    user can act on; hide them during the export and leave the loggers' levels as they were."""
    loggers = [logging.getLogger(name) for name in ("transformers", "optimum", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_causal_lm(hf_dir: Path) -> dict[str, object]:
    """The folder's config.json, or an InputError/ModelFileError saying why it is not a causal LM source."""
    config_file = hf_dir / "config.json"
    if not hf_dir.is_dir() or not config_file.is_file():
        raise InputError(
            f"{hf_dir}: not a Hugging Face model folder (no config.json)",
            "Point at the folder that holds config.json, the safetensors weights and tokenizer.json.",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{config_file} is not valid JSON: {e}") from None
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or not any(str(a).endswith("ForCausalLM") for a in archs):
        raise InputError(
            f"{hf_dir}: not a causal language model (architectures: {archs})",
            "Export chat models (e.g. LlamaForCausalLM, Qwen2ForCausalLM) here; encoders such as "
            "all-MiniLM-L6-v2 take the encoder path ('--to int8' on an encoder folder).",
        )
    if not (hf_dir / "tokenizer.json").is_file():
        raise ModelFileError(
            f"{hf_dir}: tokenizer.json is missing",
            "The ONNX backend needs the fast tokenizer; save it with tokenizer.save_pretrained().",
        )
    return config


def export_causal_lm(hf_dir: Path, out_dir: Path, *, progress: ProgressFn | None = None) -> Path:
    """Export the causal LM in ``hf_dir`` to an ONNX folder at ``out_dir`` (written atomically)."""
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    report = progress or no_progress
    config = check_causal_lm(hf_dir)
    fused = fused_export(config)
    if fused:
        require("torch", "transformers", "onnxruntime_genai", "onnx", extra=ONNX_EXTRA)
    else:
        require("torch", "transformers", "optimum.exporters.onnx", "onnx", extra=ONNX_EXTRA)
    with atomic_output(out_dir, folder=True) as tmp:
        report("export", 0, 1)
        (_build_fused if fused else _export_optimum)(hf_dir, tmp)
        if not (tmp / "model.onnx").is_file():
            raise ModelFileError(
                f"{hf_dir}: the exporter wrote no model.onnx", "Run again with EDGEKIT_DEBUG=1."
            )
        for name in SIDE_FILES:
            if not (tmp / name).exists() and (hf_dir / name).is_file():
                shutil.copy2(hf_dir / name, tmp / name)
        report("export", 1, 1)
    return out_dir


def fused_export(config: dict[str, object]) -> bool:
    """True when onnxruntime-genai's builder exports this architecture (``FUSED_ARCHITECTURES``)."""
    archs = config.get("architectures")
    return isinstance(archs, list) and len(archs) == 1 and archs[0] in FUSED_ARCHITECTURES


def _build_fused(hf_dir: Path, out: Path) -> None:
    work = out / ".builder"  # the builder's scratch (temporary external data), removed before the rename
    try:
        done = run_module(
            BUILDER,
            *("-i", str(hf_dir), "-o", str(out), "-p", "fp32", "-e", "cpu", "-c", str(work)),
            *("--extra_options", "hf_remote=false", "hf_token=false"),
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ModelFileError(
            f"{hf_dir}: the ONNX export did not finish in {BUILD_TIMEOUT_S:.0f} s", "Run again."
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if done.returncode != 0:
        raise ModelFileError(
            f"{hf_dir}: ONNX export failed ({failure(done.returncode, done.stderr, 200)})",
            f"See the builder's whole log: python -m {BUILDER} -i {hf_dir} -o OUT -p fp32 -e cpu",
        )


def _export_optimum(hf_dir: Path, out: Path) -> None:
    from optimum.exporters.onnx import main_export

    try:
        with quiet_exporter():
            main_export(
                str(hf_dir),
                output=str(out),
                task=TASK,
                library_name="transformers",
                device="cpu",
                do_validation=False,
            )
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as e:
        detail = str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)
        raise ModelFileError(
            f"{hf_dir}: ONNX export failed ({detail})",
            "Use an architecture optimum-onnx exports with past key values (llama, qwen2, mistral, "
            "phi3, gemma, ...).",
        ) from None


class ExportONNX:
    """The pipeline's ``export`` step: HF folder -> float ONNX causal LM with past key values."""

    def run(self, ctx: StepContext) -> None:
        export_causal_lm(ctx.inputs["model"], ctx.out, progress=ctx.progress)
