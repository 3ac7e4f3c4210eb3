"""Compression recipes: one TOML file that says how a shipped model is made from its source.

A recipe names a source, an optional distillation step, the conversion, a calibration set, one or more
targets built from the same source and calibration set, and an eval gate. Paths inside a recipe are
relative to the recipe file. Outputs go to ``[output] dir`` (relative to the recipe file), or to
``build/<recipe name>/`` in the working directory when the recipe does not say::

    version = 1
    description = "The default model to Q4_K_M with an importance matrix"

    [source]
    model = "smollm2-135m-instruct"   # models.lock name, HF folder, .gguf file or org/name@<commit>
    allow_requantize = true           # the source is an already-quantized GGUF

    [distill]                         # optional: a depth-pruned student trained on the source
    drop_layers = 6
    data = "../data/distill/train.txt"

    [convert]
    outtype = "f16"                   # HF folder -> GGUF at this precision before quantizing

    [calibration]
    data = "../data/calibration"      # text file or folder the importance matrix / static ranges read
    chunk_tokens = 512

    [[targets]]
    name = "smollm2-135m-instruct-q4_k_m"     # the models.lock entry it gets
    format = "gguf"
    type = "Q4_K_M"
    [targets.overrides]
    output = "Q6_K"
    tensors = { "blk\\\\.0\\\\..*" = "Q8_0" }

    [[targets]]
    name = "smollm2-135m-instruct-onnx-int4"
    format = "onnx"
    type = "int4"
    block_size = 32

    [eval]
    suite = "../evals/default.toml"
    baseline = "source"               # "source", "unquantized", a models.lock name or a model path

The file is validated with pydantic (unknown keys name the file, line and closest valid key); inside,
a recipe is the frozen ``Recipe`` dataclass that ``pipeline.plan`` turns into steps.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgekit.compress.passes.gguf_quantize import TensorOverrides
from edgekit.compress.source import output_stem
from edgekit.errors import RecipeError
from edgekit.tomlfile import line_of, read_toml, validate

OUTTYPES = ("f16", "bf16", "f32")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+@[0-9a-f]{40}$")


def gguf_types() -> tuple[str, ...]:
    """Whole-model types the GGUF quantizer accepts (its own table)."""
    from edgekit.compress.passes.gguf_quantize import QUANT_TYPES

    return tuple(QUANT_TYPES)


def onnx_types() -> tuple[str, ...]:
    """ONNX targets: the float export, the ONNX quantizer's modes (its own list) and an encoder's int8."""
    from edgekit.compress.passes.onnx_quantize import MODES

    return ("fp32", *MODES, "int8")


def tensor_types() -> tuple[str, ...]:
    """Per-tensor types for overrides (the quantizer's own table)."""
    from edgekit.compress.passes.gguf_quantize import TENSOR_TYPES

    return tuple(TENSOR_TYPES)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Source(_Strict):
    model: str = Field(min_length=1)
    allow_requantize: bool = False


class _Distill(_Strict):
    drop_layers: Annotated[int, Field(ge=1)]
    mode: Literal["logits", "sequence"] = "logits"
    data: str | None = None
    prompts: str | None = None
    generator: str | None = None
    steps: Annotated[int, Field(ge=1)] = 200
    seq_len: Annotated[int, Field(ge=8)] = 256
    batch_size: Annotated[int, Field(ge=1)] = 4
    lr: Annotated[float, Field(gt=0)] = 5e-5
    temperature: Annotated[float, Field(gt=0)] = 2.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0
    seed: int = 0


class _Convert(_Strict):
    outtype: Literal["f16", "bf16", "f32"] = "f16"


class _Calibration(_Strict):
    data: str | None = None  # a .txt/.jsonl file or a folder of them (edgekit.compress.calibration)
    imatrix: str | None = None  # a llama.cpp imatrix file to use instead of computing one
    chunk_tokens: Annotated[int, Field(ge=64, le=8192)] = 512
    max_chunks: Annotated[int, Field(ge=1)] | None = None


class _Overrides(_Strict):
    output: str | None = None  # type of output.weight
    token_embedding: str | None = None  # type of token_embd.weight
    tensors: dict[str, str] = Field(default_factory=dict)  # tensor-name regex -> type


class _Target(_Strict):
    name: str = Field(min_length=1)
    format: Literal["gguf", "onnx"]
    type: str = Field(min_length=1)
    out: str | None = None
    calibrate: bool | None = None
    block_size: Annotated[int, Field(ge=16, le=256)] | None = None
    overrides: _Overrides = _Overrides()
    role: str = "chat"
    license: str = "unknown"
    description: str = ""


class _Eval(_Strict):
    suite: str = Field(min_length=1)
    baseline: str = Field(default="source", min_length=1)
    targets: list[str] | None = None


class _Output(_Strict):
    dir: str = Field(min_length=1)


class _RecipeFile(_Strict):
    version: Literal[1] = 1
    description: str = ""
    source: _Source
    distill: _Distill | None = None
    convert: _Convert = _Convert()
    calibration: _Calibration | None = None
    targets: Annotated[list[_Target], Field(min_length=1)]
    eval: _Eval | None = None
    output: _Output | None = None


@dataclass(frozen=True)
class Target:
    """One artifact the recipe ships: a GGUF quantization or an ONNX quantization of the source."""

    name: str
    format: Literal["gguf", "onnx"]
    type: str
    out: Path
    calibrate: bool
    overrides: TensorOverrides = field(default_factory=TensorOverrides)
    block_size: int | None = None
    role: str = "chat"
    license: str = "unknown"
    description: str = ""

    def settings(self) -> dict[str, Any]:
        """The options that shape the output bytes (its cache key and provenance)."""
        data: dict[str, Any] = {"format": self.format, "type": self.type, "calibrate": self.calibrate}
        if self.block_size is not None:
            data["block_size"] = self.block_size
        if self.overrides.to_dict():
            data["overrides"] = self.overrides.to_dict()
        return data


@dataclass(frozen=True)
class Calibration:
    data: Path | None = None
    imatrix: Path | None = None
    chunk_tokens: int = 512
    max_chunks: int | None = None


@dataclass(frozen=True)
class EvalGate:
    suite: Path
    baseline: str  # "source", "unquantized", a lock name or a path (resolved against the recipe)
    targets: tuple[str, ...]  # target names the gate applies to


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. ``source`` is a path when the recipe named an existing file or folder."""

    path: Path
    sha256: str
    source: str
    targets: tuple[Target, ...]
    out_dir: Path
    description: str = ""
    allow_requantize: bool = False
    distill: Mapping[str, Any] | None = None  # DistillConfig fields (paths resolved)
    outtype: str = "f16"
    calibration: Calibration | None = None
    eval: EvalGate | None = None
    lines: Mapping[str, int] = field(default_factory=dict)  # "targets.0.type" -> line, for later errors
    made_by: str = "compress"  # the provenance's step: "quantize" for the one-target recipe quantize() runs

    @property
    def name(self) -> str:
        return self.path.stem


def shipped_recipes() -> dict[str, Path]:
    """The recipes that ship with edgekit, by name (``default-q8_0``, ...)."""
    from importlib import resources

    folder = Path(str(resources.files("edgekit") / "_data" / "recipes" / "compress"))
    if not folder.is_dir():  # a source checkout: recipes/ sits at the repository root
        folder = Path(__file__).resolve().parents[2] / "recipes" / "compress"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def recipe_path(spec: Path | str) -> Path:
    """A recipe file: ``spec`` itself when it exists, else the shipped recipe of that name."""
    path = Path(spec).expanduser()
    if path.exists() or path.suffix or "/" in str(spec):
        return path
    shipped = shipped_recipes()
    if str(spec) in shipped:
        return shipped[str(spec)]
    raise RecipeError(
        f"{spec}: no such recipe file, and no shipped recipe by that name",
        f"Give a recipe path, or one of: {', '.join(shipped) or '(none shipped)'}.",
    )


def load_recipe(path: Path | str, *, out_dir: Path | None = None) -> Recipe:
    """Read and validate a recipe file (or a shipped recipe's name). Raises RecipeError naming the file,
    line and key.

    Outputs stay in one folder: ``out_dir`` when the caller chooses it, else the recipe's ``[output] dir``,
    which must lie under the recipe's folder or the working directory (a recipe from elsewhere cannot
    write elsewhere); a target's ``out`` is a path inside that folder, and no output may overwrite an input
    (the source, calibration, distillation data, the eval suite or baseline, the recipe itself)."""
    path = recipe_path(path)
    text, data = read_toml(path, "recipe file", RecipeError)
    parsed: _RecipeFile = validate(_RecipeFile, data, text, path, RecipeError)
    root = path.resolve().parent

    def where(*loc: str | int) -> str:
        keys = [str(k) for k in loc]
        return f"{path}:{line_of(text, keys)}: {'.'.join(keys)}"

    def local(value: str, *loc: str | int, what: str = "file") -> Path:
        found = (root / value).resolve()
        if not found.exists():
            raise RecipeError(f"{where(*loc)}: {found} does not exist", f"Point it at an existing {what}.")
        return found

    source = _source(parsed.source.model, root, where("source", "model"))
    if out_dir is not None:
        out_dir = Path(out_dir).expanduser().resolve()
    elif parsed.output is not None:
        out_dir = (root / parsed.output.dir).resolve()
        if not any(out_dir.is_relative_to(base) for base in (root, Path.cwd().resolve())):
            raise RecipeError(
                f"{where('output', 'dir')}: {out_dir} lies outside the recipe's folder ({root}) and the "
                "working directory",
                "Put the outputs under one of them, or choose the folder explicitly (out_dir=DIR).",
            )
    else:
        out_dir = Path.cwd().resolve() / "build" / path.stem
    targets = tuple(_target(t, i, parsed, out_dir, where) for i, t in enumerate(parsed.targets))
    names = [t.name for t in targets]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise RecipeError(f"{where('targets', 'name')}: two targets are named {dup!r}", "Name each one.")
    calibration = None
    if parsed.calibration is not None:
        c = parsed.calibration
        calibration = Calibration(
            data=local(c.data, "calibration", "data", what="text file or folder") if c.data else None,
            imatrix=local(c.imatrix, "calibration", "imatrix", what="imatrix file") if c.imatrix else None,
            chunk_tokens=c.chunk_tokens,
            max_chunks=c.max_chunks,
        )
        if calibration.data is None and calibration.imatrix is None:
            raise RecipeError(f"{where('calibration')}: give data (a text file or folder) or an imatrix file")
    for t in targets:
        if t.format == "onnx" and t.calibrate and calibration is not None and calibration.data is None:
            raise RecipeError(
                f"{where('calibration', 'data')}: target {t.name!r} ({t.type}) measures activations on "
                "calibration text; an imatrix file is not enough",
                "Add data = a text file or folder to [calibration].",
            )
        if t.calibrate and calibration is None:
            raise RecipeError(
                f"{where('targets', 'calibrate')}: target {t.name!r} needs calibration data "
                f"({t.type} is {'an importance-matrix type' if t.format == 'gguf' else 'a static type'})",
                "Add a [calibration] table with data = a text file or folder.",
            )
    distill = None
    if parsed.distill is not None:
        d = parsed.distill.model_dump(exclude_none=True)
        for key in ("data", "prompts"):
            if key in d:
                d[key] = local(d[key], "distill", key, what="text file")
        distill = d
    gate = None
    if parsed.eval is not None:
        gate = _eval(parsed.eval, names, root, where)
    inputs = [
        path.resolve(),
        *(Path(v) for v in (source, gate and gate.baseline) if v and Path(v).is_absolute()),
    ]
    inputs += [p for p in (calibration.data, calibration.imatrix) if p] if calibration else []
    inputs += [v for v in distill.values() if isinstance(v, Path)] if distill else []
    inputs += [gate.suite] if gate else []
    _outputs_apart(targets, inputs, where)
    return Recipe(
        path=path.resolve(),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        source=source,
        targets=targets,
        out_dir=out_dir,
        description=parsed.description,
        allow_requantize=parsed.source.allow_requantize,
        distill=distill,
        outtype=parsed.convert.outtype,
        calibration=calibration,
        eval=gate,
    )


def _source(model: str, root: Path, where: str) -> str:
    """A path when ``model`` names one next to the recipe; else a lock name or hub id as written."""
    candidate = (root / model).expanduser()
    if candidate.is_file():
        try:
            with candidate.open("rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise RecipeError(f"{where}: cannot read {candidate}: {e.strerror}") from None
        if magic != b"GGUF":
            raise RecipeError(
                f"{where}: {candidate.resolve()} is not a GGUF file (it starts with {magic!r}, not b'GGUF')",
                "Name a .gguf file, a Hugging Face folder (with config.json) or a models.lock entry.",
            )
        return str(candidate.resolve())
    if candidate.is_dir():
        if not (candidate / "config.json").is_file() and not any(candidate.glob("*.onnx")):
            raise RecipeError(
                f"{where}: {candidate.resolve()} is not a Hugging Face model folder (no config.json)",
                "Name a Hugging Face folder, a .gguf file or a models.lock entry.",
            )
        return str(candidate.resolve())
    if HUB.match(model) or (NAME.match(model) and "/" not in model and not model.endswith(".gguf")):
        return model
    raise RecipeError(
        f"{where}: {candidate} does not exist, and {model!r} is not a models.lock name or org/name@<commit>",
        "Name a models.lock entry, or a Hugging Face folder or .gguf file relative to the recipe.",
    )


def _outputs_apart(targets: Sequence[Target], inputs: list[Path], where: Any) -> None:
    """No target's output is, holds or lies in an input, or another target's output."""

    def overlap(a: Path, b: Path) -> bool:
        return a == b or a.is_relative_to(b) or b.is_relative_to(a)

    for i, t in enumerate(targets):
        hit = next((p for p in inputs if overlap(t.out, p.resolve())), None)
        if hit is not None:
            raise RecipeError(
                f"{where('targets', i, 'out')}: target {t.name!r} would write {t.out}, over its input {hit}",
                "Give the target another out, or the recipe another output folder.",
            )
        other = next((o for o in targets[:i] if overlap(t.out, o.out)), None)
        if other is not None:
            raise RecipeError(
                f"{where('targets', i, 'out')}: targets {other.name!r} and {t.name!r} both write {t.out}",
                "Give each target its own out.",
            )


def _target(t: _Target, i: int, parsed: _RecipeFile, out_dir: Path, where: Any) -> Target:
    if not NAME.match(t.name):
        raise RecipeError(
            f"{where('targets', i, 'name')}: bad name {t.name!r}", "Use letters, digits, . _ -."
        )
    valid = gguf_types() if t.format == "gguf" else onnx_types()
    kind = t.type.upper() if t.format == "gguf" else t.type.lower()
    if kind not in valid:
        raise RecipeError(
            f"{where('targets', i, 'type')}: unknown {t.format} type {t.type!r}",
            f"Use one of: {', '.join(valid)}.",
        )
    for label, value in (("output", t.overrides.output), ("token_embedding", t.overrides.token_embedding)):
        if value is not None and value.upper() not in tensor_types():
            raise RecipeError(f"{where('targets', i, 'overrides', label)}: unknown tensor type {value!r}")
    for pattern, value in t.overrides.tensors.items():
        try:
            re.compile(pattern)
        except re.error as e:
            raise RecipeError(
                f"{where('targets', i, 'overrides', 'tensors')}: bad regex {pattern!r}: {e}"
            ) from None
        if value.upper() not in tensor_types():
            raise RecipeError(f"{where('targets', i, 'overrides', 'tensors')}: unknown tensor type {value!r}")
    if t.format == "onnx" and t.overrides != _Overrides():
        raise RecipeError(f"{where('targets', i, 'overrides')}: tensor overrides apply to GGUF targets only")
    needs_data = (t.format == "gguf" and kind in _needs_imatrix()) or kind == "int8-static"
    calibrate = t.calibrate if t.calibrate is not None else parsed.calibration is not None
    if needs_data and t.calibrate is False:
        raise RecipeError(f"{where('targets', i, 'calibrate')}: {kind} cannot be built without calibration")
    calibrate = calibrate or needs_data
    if t.format == "onnx" and kind != "int8-static":
        calibrate = False  # dynamic int8 and weight-only int4 read no activations
    suffix = ".gguf" if t.format == "gguf" else ""
    out = (out_dir / t.out).resolve() if t.out else out_dir / f"{t.name}{suffix}"
    if t.out is not None and (Path(t.out).is_absolute() or not out.is_relative_to(out_dir) or out == out_dir):
        raise RecipeError(
            f"{where('targets', i, 'out')}: {t.out!r} leaves the output folder {out_dir}",
            "Give a file or folder name inside it; to write elsewhere, choose the output folder instead.",
        )
    return Target(
        name=t.name,
        format=t.format,
        type=kind,
        out=out,
        calibrate=calibrate,
        overrides=TensorOverrides(
            output=t.overrides.output.upper() if t.overrides.output else None,
            token_embedding=t.overrides.token_embedding.upper() if t.overrides.token_embedding else None,
            tensors=tuple(sorted((k, v.upper()) for k, v in t.overrides.tensors.items())),
        ),
        block_size=t.block_size,
        role=t.role,
        license=t.license,
        description=t.description,
    )


def _needs_imatrix() -> frozenset[str]:
    from edgekit.compress.passes.gguf_quantize import NEEDS_IMATRIX

    return NEEDS_IMATRIX


def _eval(e: _Eval, names: list[str], root: Path, where: Any) -> EvalGate:
    suite = (root / e.suite).resolve()
    if not suite.is_file():
        raise RecipeError(
            f"{where('eval', 'suite')}: suite file {suite} does not exist",
            "Point it at a suite TOML, e.g. the shipped recipes/evals/default.toml.",
        )
    unknown = [n for n in (e.targets or []) if n not in names]
    if unknown:
        raise RecipeError(
            f"{where('eval', 'targets')}: no target named {unknown[0]!r}", f"Targets: {', '.join(names)}."
        )
    baseline = e.baseline
    if baseline not in ("source", "unquantized") and (root / baseline).exists():
        baseline = str((root / baseline).resolve())
    return EvalGate(suite=suite, baseline=baseline, targets=tuple(e.targets or names))


def from_quantize_args(
    src: str,
    to: str,
    *,
    recipe_dir: Path,
    format: str = "gguf",
    calibration: Path | None = None,
    imatrix: Path | None = None,
    output_type: str | None = None,
    embedding_type: str | None = None,
    tensor_types: Sequence[tuple[str, str]] = (),
    out: Path | None = None,
    name: str | None = None,
    allow_requantize: bool = False,
    block_size: int | None = None,
    suite: Path | None = None,
) -> str:
    """The recipe (TOML text) that ``edgekit compress`` runs to build what these ``edgekit quantize``
    options build. Paths the options give relative to the working directory are written relative to
    ``recipe_dir``, where the recipe will live; the output lands where quantize would have put it."""
    import os

    import tomlkit

    cwd = Path.cwd()

    def rel(p: Path) -> str:
        return Path(os.path.relpath((cwd / p).resolve(), recipe_dir.resolve())).as_posix()

    doc = tomlkit.document()
    doc.add(
        tomlkit.comment("Emitted by 'edgekit quantize --emit-recipe'; run it with 'edgekit compress FILE'.")
    )
    doc["version"] = 1
    doc["description"] = f"{src} to {format} {to}"
    model = rel(Path(src)) if Path(src).exists() else src
    doc["source"] = {"model": model, **({"allow_requantize": True} if allow_requantize else {})}
    if calibration or imatrix:
        cal: dict[str, Any] = {}
        if calibration:
            cal["data"] = rel(calibration)
        if imatrix:
            cal["imatrix"] = rel(imatrix)
        doc["calibration"] = cal
    stem = output_stem(src)
    target: dict[str, Any] = {"name": name or f"{stem}-{to.lower().replace('_', '-')}", "format": format}
    target["type"] = to
    if out is not None:
        target["out"] = Path(out).name
    elif format == "gguf":
        target["out"] = f"{stem}-{to.upper()}.gguf"  # quantize's own default
    if block_size is not None:
        target["block_size"] = block_size
    overrides: dict[str, Any] = {}
    if output_type:
        overrides["output"] = output_type
    if embedding_type:
        overrides["token_embedding"] = embedding_type
    if tensor_types:
        overrides["tensors"] = dict(tensor_types)
    if overrides:
        target["overrides"] = overrides
    doc["targets"] = tomlkit.aot()
    doc["targets"].append(tomlkit.item(target))
    if suite is not None:
        doc["eval"] = {"suite": rel(suite), "baseline": "source"}
    doc["output"] = {"dir": rel(Path(out).parent if out is not None else Path("."))}
    return tomlkit.dumps(doc)
