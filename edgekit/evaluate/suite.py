"""Eval suites: which texts to score, which tasks to run, and the gates a candidate must pass.

A suite is a TOML file (``recipes/evals/default.toml`` is the default); relative paths in it are
relative to the suite file::

    version = 1
    description = "..."

    [drift]
    chunk_tokens = 512      # window size: each window is scored from an empty context
    top_k = 1024            # baseline log-probabilities kept per position in the cache
    min_tokens = 64         # a slice with fewer tokens is an input error

    [slices.prose]
    file = "../data/eval/prose.txt"

    [slices.long_context]
    file = "../data/eval/long_context.txt"
    chunk_tokens = 2048     # this slice's own window size

    [slices.code.gates]     # per-slice overrides of the drift gates
    max_mean_kld = 0.2

    [tasks]
    file = "../data/eval/tasks.toml"
    max_tokens = 48         # per reply, greedy
    limit = 8               # at most this many prompts per group (optional)

    [speed]
    runs = 2                # generation runs per model (0: skip); the faster one counts
    max_tokens = 48

    [gates]                 # every key optional; unset gates are not checked
    max_mean_kld = 0.1

Drift gates (``DRIFT_GATES``) apply to all slices together ("all") and to each slice, where a slice's
``gates`` table overrides them. Task and speed gates apply once. Unknown keys and thresholds that can
never be met (a probability outside [0, 1], a negative divergence, a ratio <= 0) are input errors
naming the file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgekit.errors import InputError, SuiteError
from edgekit.evaluate.tasks import TaskSet
from edgekit.tomlfile import line_of, read_toml, validate

Prob = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Window = Annotated[int, Field(ge=16, le=131072)]
SLICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftGates(_Strict):
    max_mean_kld: NonNeg | None = None
    max_median_kld: NonNeg | None = None
    max_p90_kld: NonNeg | None = None
    max_p99_kld: NonNeg | None = None
    max_max_kld: NonNeg | None = None
    min_top1: Prob | None = None
    max_top_p_rms: Prob | None = None
    max_ppl_ratio: Positive | None = None


class Gates(DriftGates):
    min_json_validity: Prob | None = None
    max_json_validity_drop: Prob | None = None
    max_refusal_drift: Prob | None = None
    max_exact_match_drop: Prob | None = None
    min_speed_ratio: Positive | None = None
    max_size_ratio: Positive | None = None


DRIFT_GATES = tuple(DriftGates.model_fields)
TASK_GATES = ("min_json_validity", "max_json_validity_drop", "max_refusal_drift", "max_exact_match_drop")
SPEED_GATES = ("min_speed_ratio", "max_size_ratio")


class _Drift(_Strict):
    chunk_tokens: Window = 512
    top_k: Annotated[int, Field(ge=1, le=16384)] = 1024
    min_tokens: Annotated[int, Field(ge=2)] = 64


class _Slice(_Strict):
    file: str = Field(min_length=1)
    description: str = ""
    chunk_tokens: Window | None = None
    gates: DriftGates = DriftGates()


class _Tasks(_Strict):
    file: str | None = None
    enabled: bool = True
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 48
    limit: Annotated[int, Field(ge=1)] | None = None


class _Speed(_Strict):
    runs: Annotated[int, Field(ge=0, le=20)] = 2
    max_tokens: Annotated[int, Field(ge=2, le=4096)] = 48
    prompt: str = Field(default="Write a short paragraph about the history of the bicycle.", min_length=1)


class _SuiteFile(_Strict):
    version: Literal[1] = 1
    description: str = ""
    drift: _Drift = _Drift()
    slices: dict[str, _Slice] = Field(min_length=1)
    tasks: _Tasks = _Tasks()
    speed: _Speed = _Speed()
    gates: Gates = Gates()


@dataclass(frozen=True)
class Slice:
    name: str
    text: str
    chunk_tokens: int
    gates: Mapping[str, float] = field(default_factory=dict)
    """Drift gates for this slice: the suite's, with this slice's overrides applied."""
    description: str = ""
    source: Path | None = None


@dataclass(frozen=True)
class Suite:
    """A loaded suite, ready to run (build one in code, or read a TOML file with ``load_suite``)."""

    slices: tuple[Slice, ...]
    gates: Mapping[str, float] = field(default_factory=dict)
    """All suite-level gates that are set: drift gates (for "all"), task and speed gates."""
    top_k: int = 1024
    min_tokens: int = 64
    tasks: TaskSet | None = None
    task_max_tokens: int = 48
    speed_runs: int = 2
    speed_max_tokens: int = 48
    speed_prompt: str = "Write a short paragraph about the history of the bicycle."
    description: str = ""
    path: Path | None = None


def default_suite_path() -> Path:
    shipped = resources.files("edgekit") / "_data" / "recipes" / "evals" / "default.toml"
    if shipped.is_file():
        return Path(str(shipped))
    # An editable install of a source checkout: recipes/ sits at the repository root.
    return Path(__file__).resolve().parents[2] / "recipes" / "evals" / "default.toml"


def _set(gates: BaseModel) -> dict[str, float]:
    return {k: float(v) for k, v in gates.model_dump().items() if v is not None}


def load_suite(path: Path | str | None = None) -> Suite:
    """Read and validate a suite file (default: the shipped ``recipes/evals/default.toml``)."""
    path = Path(path).expanduser() if path is not None else default_suite_path()
    text, data = read_toml(path, "suite file", SuiteError)
    parsed: _SuiteFile = validate(_SuiteFile, data, text, path, SuiteError)
    root = path.parent
    top = _set(parsed.gates)
    drift_top = {k: v for k, v in top.items() if k in DRIFT_GATES}
    slices = []
    for name, spec in parsed.slices.items():
        where = f"{path}:{line_of(text, ['slices', name, 'file'])}: slices.{name}"
        if not SLICE_NAME.match(name):
            raise SuiteError(f"{where}: bad slice name (letters, digits, _ and -)")
        file = root / spec.file
        try:
            body = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SuiteError(f"{where}.file: {file} does not exist") from None
        except (IsADirectoryError, UnicodeDecodeError) as e:
            raise SuiteError(f"{where}.file: cannot read {file} as UTF-8 text ({e})") from None
        slices.append(
            Slice(
                name=name,
                text=body,
                chunk_tokens=spec.chunk_tokens or parsed.drift.chunk_tokens,
                gates={**drift_top, **_set(spec.gates)},
                description=spec.description,
                source=file,
            )
        )
    tasks = None
    if parsed.tasks.enabled and parsed.tasks.file:
        tasks = TaskSet.load(root / parsed.tasks.file, parsed.tasks.limit)
    elif parsed.tasks.enabled and any(k in top for k in TASK_GATES):
        raise SuiteError(
            f"{path}:{line_of(text, ['tasks'])}: tasks: task gates are set but no [tasks] file is given"
        )
    return Suite(
        slices=tuple(slices),
        gates=top,
        top_k=parsed.drift.top_k,
        min_tokens=parsed.drift.min_tokens,
        tasks=tasks,
        task_max_tokens=parsed.tasks.max_tokens,
        speed_runs=parsed.speed.runs,
        speed_max_tokens=parsed.speed.max_tokens,
        speed_prompt=parsed.speed.prompt,
        description=parsed.description,
        path=path,
    )


def check_texts(suite: Suite) -> None:
    for s in suite.slices:
        if not s.text.strip():
            where = f"{s.source}" if s.source else f"slice '{s.name}'"
            raise InputError(
                f"{where}: the text of slice '{s.name}' is empty",
                f"Put at least {suite.min_tokens} tokens of held-out text in it, or drop the slice.",
            )
