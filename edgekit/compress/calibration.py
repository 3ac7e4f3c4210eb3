"""Calibration text: what the importance matrix (and static ONNX quantization) sees of real use.

A calibration set is read from one file or a folder of files:

- ``.txt``: documents separated by blank lines.
- ``.jsonl``: one object per line, either ``{"text": ...}`` or ``{"messages": [{"role", "content"}, ...]}``;
  messages are rendered with a chat template (ChatML unless the caller passes the model's own), so the
  statistics see the same special tokens and turn structure the model sees at run time.

Calibration data must stay apart from the evaluation text the drift gate scores: a model calibrated on
its test set passes its own gate. ``check_overlap`` measures the share of the calibration's word n-grams
that also occur in the evaluation text and returns a warning above a threshold (the library never prints).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.files import file_sha256

MIN_CHARS = 2000
"""Smallest calibration set accepted: about 500 tokens, one 512-token window of activation statistics."""

OVERLAP_THRESHOLD = 0.02
"""Share of calibration 8-grams also found in the evaluation text above which ``check_overlap`` warns."""

SUFFIXES = (".txt", ".jsonl")

# ChatML, the format of SmolLM2 and Qwen2.5; pass the model's own template where it differs.
CHATML = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


class CalibrationError(InputError):
    default_hint = "Give a .txt file (blank-line separated), a .jsonl file of text or messages, or a folder."


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration documents, rendered to the text the model reads, with the content hash of the source.

    ``sha256`` is the file's sha256 for a single file; for a folder, the sha256 of the sorted lines
    ``<relative path> <file sha256>``, so renaming or editing any member changes it.
    """

    texts: tuple[str, ...]
    sha256: str
    name: str

    @property
    def chars(self) -> int:
        return sum(len(t) for t in self.texts)

    def subset(self, n: int) -> CalibrationSet:
        """The first ``n`` documents (for quick runs); the hash says it is a subset."""
        texts = self.texts[:n]
        digest = hashlib.sha256(f"{self.sha256}[:{n}]".encode()).hexdigest()
        return CalibrationSet(texts, digest, f"{self.name}[:{n}]")


def load_calibration(
    path: str | Path, *, chat_template: str | None = None, min_chars: int = MIN_CHARS
) -> CalibrationSet:
    """Read a calibration file or folder. Raises ``CalibrationError`` (exit 2) on unusable input."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise CalibrationError(f"{path}: no .txt or .jsonl files in this folder")
        lines = [f"{p.relative_to(path).as_posix()} {file_sha256(p)}" for p in files]
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    elif path.is_file():
        if path.suffix not in SUFFIXES:
            raise CalibrationError(f"{path}: calibration files must end in .txt or .jsonl")
        files = [path]
        digest = file_sha256(path)
    else:
        raise CalibrationError(f"{path}: no such file or folder")
    texts: list[str] = []
    for f in files:
        texts.extend(_read_file(f, chat_template or CHATML))
    texts = [t for t in texts if t.strip()]
    chars = sum(len(t) for t in texts)
    if chars < min_chars:
        what = "is empty" if chars == 0 else f"has only {chars:,} characters"
        raise CalibrationError(
            f"{path}: calibration text {what}; at least {min_chars:,} characters are needed",
            f"Add text until it has {min_chars:,} characters or more (tens of thousands of tokens give "
            "a better importance matrix).",
        )
    return CalibrationSet(tuple(texts), digest, path.name)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CalibrationError(
            f"{path}: not UTF-8 text", "Convert it to UTF-8 (for example with iconv -t UTF-8)."
        ) from None
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read ({e.strerror})") from None


def _read_file(path: Path, template: str) -> list[str]:
    text = _read_text(path)
    if path.suffix == ".txt":
        return [doc.strip() for doc in re.split(r"\n\s*\n", text) if doc.strip()]
    render = _renderer(template)
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CalibrationError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        out.append(_document(obj, render, f"{path}:{lineno}"))
    return out


def _document(obj: Any, render: Any, where: str) -> str:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return str(obj["text"])
    messages = obj.get("messages") if isinstance(obj, dict) else None
    if isinstance(messages, list) and messages and all(_is_message(m) for m in messages):
        return str(render(messages=messages))
    raise CalibrationError(
        f'{where}: expected {{"text": "..."}} or {{"messages": [{{"role": ..., "content": ...}}, ...]}}'
    )


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def _renderer(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    compiled = env.from_string(template)

    def render(messages: list[dict[str, str]]) -> str:
        return compiled.render(messages=messages, add_generation_prompt=False, bos_token="", eos_token="")

    return render


# --- overlap with evaluation text --------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    share: float
    """Share of the calibration's distinct word n-grams that also occur in the evaluation text."""
    n: int
    threshold: float
    warning: str | None
    """A one-line warning when ``share`` is above ``threshold``, else None."""


def _ngrams(texts: Iterable[str], n: int) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams


def overlap(
    calibration: CalibrationSet | Sequence[str], evaluation_texts: Iterable[str], n: int = 8
) -> float:
    """Share (0..1) of the calibration's distinct word ``n``-grams that occur in ``evaluation_texts``."""
    texts = calibration.texts if isinstance(calibration, CalibrationSet) else tuple(calibration)
    cal = _ngrams(texts, n)
    if not cal:
        return 0.0
    return len(cal & _ngrams(evaluation_texts, n)) / len(cal)


def evaluation_texts(folder: Path | None = None) -> list[str]:
    """The drift gate's held-out text (``recipes/data/eval/*.txt``, or its copy inside the package)."""
    folder = folder or _eval_folder()
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))]


def _eval_folder() -> Path:
    from importlib import resources

    shipped = Path(str(resources.files("edgekit") / "_data" / "recipes" / "data" / "eval"))
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parents[2] / "recipes" / "data" / "eval"


def check_overlap(
    calibration: CalibrationSet,
    evaluation: Iterable[str] | None = None,
    *,
    n: int = 8,
    threshold: float = OVERLAP_THRESHOLD,
) -> Overlap:
    """Compare a calibration set with evaluation text (default: the drift gate's held-out slices)."""
    share = overlap(calibration, evaluation_texts() if evaluation is None else evaluation, n)
    warning = None
    if share > threshold:
        warning = (
            f"calibration set {calibration.name} shares {share:.1%} of its {n}-grams with the evaluation "
            f"text (threshold {threshold:.1%}); drift measured on that text will look better than it is"
        )
    return Overlap(share, n, threshold, warning)
