"""edgekit quantize: a source model to a quantized GGUF (or ONNX) pinned in models.lock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekit.cli.render import err, out, progress_bar


def quantize(
    src: Annotated[
        str, typer.Argument(help="Hugging Face folder, org/name@<commit>, .gguf file or models.lock name.")
    ],
    to: Annotated[str, typer.Option("--to", help="Quantization type, e.g. Q4_K_M, Q8_0, IQ4_XS, F16.")],
    format: Annotated[str, typer.Option("--format", help="Output format: gguf or onnx.")] = "gguf",
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", help="Calibration text (.txt/.jsonl or folder) for an imatrix."),
    ] = None,
    imatrix: Annotated[
        Path | None, typer.Option("--imatrix", help="Importance matrix file from llama-imatrix or edgekit.")
    ] = None,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output path [default: ./<source>-<TYPE>.gguf].")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="models.lock entry name for the output.")] = None,
    output_type: Annotated[
        str | None, typer.Option("--output-type", help="Type of the output (lm head) tensor, e.g. Q8_0.")
    ] = None,
    embedding_type: Annotated[
        str | None, typer.Option("--embedding-type", help="Type of the token-embedding tensor, e.g. Q8_0.")
    ] = None,
    tensor_type: Annotated[
        list[str] | None,
        typer.Option("--tensor-type", help="PATTERN=TYPE: tensors whose name matches the regex get TYPE."),
    ] = None,
    allow_requantize: Annotated[
        bool, typer.Option("--allow-requantize", help="Allow quantizing an already-quantized GGUF.")
    ] = False,
    emit_recipe: Annotated[
        Path | None,
        typer.Option(
            "--emit-recipe", help="Write these options as a recipe for 'edgekit compress'; build nothing."
        ),
    ] = None,
) -> None:
    """Quantize a model and record it, with provenance, in models.lock."""
    if emit_recipe is not None:
        _emit(
            emit_recipe,
            src,
            to,
            format,
            calibration,
            imatrix,
            out_path,
            name,
            output_type,
            embedding_type,
            tensor_type or [],
            allow_requantize,
        )
        return
    from edgekit.compress.passes.gguf_quantize import TensorOverrides
    from edgekit.compress.quantize import quantize as run

    overrides = TensorOverrides.parse(output_type, embedding_type, tensor_type or [])
    with progress_bar() as progress:
        result = run(
            src,
            to,
            format=format,  # type: ignore[arg-type]
            out=out_path,
            calibration=calibration,
            imatrix=imatrix,
            overrides=overrides,
            allow_requantize=allow_requantize,
            name=name,
            progress=progress,
        )
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    size = result.entry.size / 1e6
    err.print(
        f"{result.entry.name}: {result.provenance.quant_type}, {size:,.1f} MB, in models.lock", markup=False
    )
    out.print(str(result.path), markup=False)


def _emit(
    path: Path,
    src: str,
    to: str,
    format: str,
    calibration: Path | None,
    imatrix: Path | None,
    out_path: Path | None,
    name: str | None,
    output_type: str | None,
    embedding_type: str | None,
    tensor_type: list[str],
    allow_requantize: bool,
) -> None:
    from edgekit.compress.passes.gguf_quantize import TensorOverrides
    from edgekit.compress.recipe import from_quantize_args, load_recipe
    from edgekit.files import atomic_write_text

    if format == "gguf":
        from edgekit.compress.passes.gguf_quantize import quant_type

        to = quant_type(to)  # an unknown type fails here, before a file is written
    rules = TensorOverrides.parse(output_type, embedding_type, tensor_type).tensors
    text = from_quantize_args(
        src,
        to,
        recipe_dir=path.parent,
        format=format,
        calibration=calibration,
        imatrix=imatrix,
        output_type=output_type,
        embedding_type=embedding_type,
        tensor_types=rules,
        out=out_path,
        name=name,
        allow_requantize=allow_requantize,
    )
    atomic_write_text(path, text)
    try:
        load_recipe(path)  # the emitted recipe must be one compress accepts
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    err.print(f"wrote {path}; build it with: edgekit compress {path}", markup=False)
