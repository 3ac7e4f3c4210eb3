"""The passes a recipe's steps run: each adapts one plan step to the compression function that does it.

Every pass writes ``ctx.out``, a temporary sibling of the step's output that the pipeline renames into
place only when the pass returns (see ``pipeline._execute``); the functions called here write their
own outputs atomically too, so an interrupted step never leaves a file under either name. Heavy
modules (torch, transformers, optimum, onnxruntime.quantization) are imported inside ``run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.compress.pipeline import StepContext


class Dequantize:
    """GGUF -> Hugging Face folder (float32), for distillation and ONNX export of a GGUF-only source."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.hf import gguf_to_hf

        ctx.progress("dequantize", 0, 1)
        gguf_to_hf(ctx.inputs["model"], ctx.out)  # it keeps transformers' notices and bars quiet itself
        ctx.progress("dequantize", 1, 1)


class Distill:
    """Teacher HF folder -> depth-pruned, distilled student HF folder."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.distill import DistillConfig, distill

        fields: dict[str, Any] = {
            **ctx.step.config,
            **{k: ctx.inputs[k] for k in ("data", "prompts") if k in ctx.inputs},
            "teacher": str(ctx.inputs["teacher"]),
            "out": ctx.out,
            "checkpoint_dir": ctx.out.parent / f"{ctx.step.out.name}.ckpt",
            "threads": ctx.settings.threads,
        }
        config = DistillConfig(**fields)
        distill(config, progress=ctx.progress, settings=ctx.settings)


class Convert:
    """HF folder -> unquantized GGUF, kept only when its tokenizer matches the source's."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.passes.gguf_convert import convert_checked

        outtype = ctx.step.config.get("outtype", "f16")
        convert_checked(ctx.inputs["model"], ctx.out, outtype=outtype, progress=ctx.progress)


class ComputeImatrix:
    """Unquantized GGUF + calibration text -> importance matrix (llama.cpp's GGUF imatrix format)."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.calibration import load_calibration
        from edgekit.compress.imatrix import write_imatrix
        from edgekit.compress.passes.imatrix import compute_imatrix

        data = load_calibration(ctx.inputs["calibration"])
        cfg = ctx.step.config
        imatrix = compute_imatrix(
            ctx.inputs["model"],
            data,
            n_ctx=int(cfg.get("chunk_tokens", 512)),
            max_chunks=cfg.get("max_chunks"),
            threads=ctx.settings.threads,
            progress=ctx.progress,
        )
        write_imatrix(imatrix, ctx.out, legacy=False)


class QuantizeGGUF:
    """GGUF (+ importance matrix) -> quantized GGUF with provenance in its metadata."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.imatrix import read_imatrix
        from edgekit.compress.passes.gguf_quantize import quantize_gguf

        target = ctx.step.target
        assert target is not None
        imatrix = read_imatrix(ctx.inputs["imatrix"]) if "imatrix" in ctx.inputs else None
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


class ExportONNX:
    """HF folder -> float ONNX causal LM with past key values."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.passes.onnx_export import export_causal_lm

        export_causal_lm(ctx.inputs["model"], ctx.out, progress=ctx.progress)


class QuantizeONNX:
    """Float ONNX folder (+ calibration text for int8-static) -> quantized ONNX folder."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.compress.passes.onnx_quantize import quantize_onnx

        target = ctx.step.target
        assert target is not None
        calibration = None
        if "calibration" in ctx.inputs:
            from edgekit.compress.calibration import load_calibration

            calibration = load_calibration(ctx.inputs["calibration"])
        quantize_onnx(
            ctx.inputs["model"],
            ctx.out,
            target.type,
            calibration=calibration,
            block_size=target.block_size or 32,
            progress=ctx.progress,
        )


class Evaluate:
    """Candidate target vs baseline on the recipe's suite -> the eval report (JSON)."""

    def run(self, ctx: StepContext) -> None:
        from edgekit.evaluate import run_eval

        report = run_eval(
            ctx.inputs["baseline"],
            ctx.inputs["candidate"],
            suite=Path(ctx.step.config["suite"]),
            settings=ctx.settings,
            progress=ctx.progress,
        )
        ctx.out.write_text(report.to_json() + "\n", encoding="utf-8")
