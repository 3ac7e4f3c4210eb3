"""Tokenizer probe, run in a child process so a native abort in llama.cpp cannot take the caller down.

A GGUF with a broken vocabulary can make llama.cpp throw from C++ (``unordered_map::at``) on ordinary
text, which aborts the whole process. ``probe_tokenizer`` loads only the vocabulary in a child, round-trips
a set of texts, and turns a crash into a ``TokenizerError``. The tokenizer fields are checked first, so a
malformed vocabulary gets a ``ModelFileError`` naming the field rather than a crash report from the child.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgekit.errors import ModelFileError, TokenizerError
from edgekit.runtime.child import last_line, run_module
from edgekit.runtime.gguf import GGUFInfo, read_gguf
from edgekit.runtime.llamacpp_fields import check_vocab

PROBE_TEXTS = (
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog. 1234567890",
    '{"name": "edgekit", "tags": ["a", "b"], "ok": true}',
    "def f(x):\n    return x ** 2  # tabs\tand  spaces",
    "Grüße aus Köln, café, naïve, Ελληνικά, русский, 日本語, 中文, عربى, हिन्दी 🙂",
    "   leading spaces, trailing spaces   \n\n",
)


def probe_tokenizer(path: Path, timeout: float = 120.0, info: GGUFInfo | None = None) -> None:
    check_vocab(path, info or read_gguf(path))
    try:
        proc = run_module("edgekit.runtime.probe", str(path), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TokenizerError(f"{path}: tokenizer probe did not finish in {timeout:.0f} s") from None
    if proc.returncode == 0:
        return
    last = last_line(proc.stderr, 200)
    if proc.returncode < 0 or "terminate" in proc.stderr or "abort" in proc.stderr.lower():
        raise TokenizerError(f"{path}: the model's tokenizer crashed on ordinary text ({last})")
    if proc.returncode == 4:
        raise TokenizerError(f"{path}: tokenizer round trip failed: {last}")
    raise ModelFileError(f"{path}: llama.cpp cannot load this model's vocabulary ({last})")


def _main(path: str) -> int:
    import llama_cpp

    try:
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    except Exception as e:
        print(f"load failed: {e}", file=sys.stderr)
        return 3
    for text in PROBE_TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)
        if not ids:
            print(f"no tokens for {text[:20]!r}", file=sys.stderr)
            return 4
        back = llm.detokenize(ids).decode("utf-8", errors="replace")
        if text.strip() not in back:
            print(f"round trip changed {text[:20]!r} into {back[:20]!r}", file=sys.stderr)
            return 4
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
