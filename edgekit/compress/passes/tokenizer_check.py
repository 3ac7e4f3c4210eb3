"""After conversion: the new GGUF must tokenize exactly like the source tokenizer.

The probe set covers ordinary text, code, JSON, many scripts and emoji, whitespace runs and the chat
special tokens. The GGUF side runs in a child process (``python -m
edgekit.compress.passes.tokenizer_check``): a broken vocabulary can make llama.cpp throw from C++ and
abort the whole process, which must never reach the caller. Any crash or differing token id is a
``TokenizerError`` that shows the first difference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from edgekit.errors import ModelFileError, TokenizerError
from edgekit.runtime.child import failure, run_module

PROBES: tuple[str, ...] = (
    "Hello world",
    "The quick brown fox jumps over the lazy dog. It's 3:45pm on 2024-06-01; 1234567890 items cost $9.99.",
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # circle\n\tprint(area(2))",
    '{"name": "edgekit", "tags": ["a", "b"], "ok": true, "n": null}',
    "Grüße aus Köln, café, naïve, Ελληνικά, русский, 日本語のテキスト, 中文, عربى, हिन्दी, 🙂👍🏽 🦙",
    "   leading and trailing spaces   ",
    "tabs\t\tand\n\n\nnewlines\r\n  mixed \t \n",
    "                                ",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
)


def source_token_ids(folder: Path, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of ``texts`` by the HF folder's own tokenizer (tokenizer.json, else transformers)."""
    tj = folder / "tokenizer.json"
    if tj.is_file():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(tj))
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise ModelFileError(f"{tj}: the source tokenizer cannot be read ({e})") from None
        return [tok.encode(t, add_special_tokens=False).ids for t in texts]
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(folder))
    return [list(auto.encode(t, add_special_tokens=False)) for t in texts]


def gguf_token_ids(gguf: Path, texts: Sequence[str], *, timeout: float = 120.0) -> list[list[int]]:
    """Token ids of ``texts`` by llama.cpp with ``gguf``'s vocabulary, computed in a child process."""
    try:
        proc = run_module(
            "edgekit.compress.passes.tokenizer_check",
            str(gguf),
            stdin=json.dumps(list(texts)),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise TokenizerError(f"{gguf}: tokenizer check did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        why = failure(proc.returncode, proc.stderr, 200)
        raise TokenizerError(f"{gguf}: the GGUF's tokenizer crashed on the probe text ({why})")
    ids: list[list[int]] = json.loads(proc.stdout)
    return ids


def check_tokenizer(source: Path, gguf: Path, texts: Sequence[str] = PROBES) -> int:
    """Raise ``TokenizerError`` unless ``gguf`` tokenizes ``texts`` as the HF ``source`` does.

    Returns the number of probe texts compared.
    """
    want = source_token_ids(source, texts)
    got = gguf_token_ids(gguf, texts)
    for text, a, b in zip(texts, want, got, strict=True):
        if a != b:
            i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise TokenizerError(
                f"{gguf}: tokenizer differs from the source on {text[:40]!r}: token {i} is "
                f"{b[i : i + 3]} in the GGUF, {a[i : i + 3]} in the source ({len(b)} vs {len(a)} tokens)"
            )
    return len(texts)


def _child(path: str) -> int:
    import llama_cpp

    texts = json.loads(sys.stdin.read())
    try:
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    except Exception as e:
        print(f"load failed: {e}", file=sys.stderr)
        return 3
    out = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]
    sys.stdout.write(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
