"""GGUF -> Hugging Face folder (dequantized to float32) with transformers, for sources that ship only GGUF.

transformers reads GGUF (it needs ``accelerate`` for that) and dequantizes every tensor; the saved folder
is an ordinary safetensors checkpoint that the converters, the ONNX exporter and distillation accept.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.compress.output import atomic_output
from edgekit.errors import MissingDependencyError, ModelFileError

TORCH_EXTRA = "pip install 'edgekit[torch]' torch==2.13.0"


def require(*modules: str, extra: str = TORCH_EXTRA) -> None:
    """Fail with the pip command to run when an optional dependency is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"this step needs {', '.join(missing)}, which is not installed", f"Run: {extra}"
        )


def gguf_to_hf(gguf: Path, out: Path) -> Path:
    """Dequantize ``gguf`` into a Hugging Face folder at ``out`` (written atomically). Returns ``out``."""
    require("torch", "transformers", "accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelFileError(f"{gguf}: no such GGUF file")
    with atomic_output(Path(out), folder=True) as tmp:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except (ValueError, KeyError, OSError, RuntimeError) as e:
            raise ModelFileError(
                f"{gguf}: transformers cannot read this GGUF ({str(e).splitlines()[0][:200]})",
                "Use a GGUF of an architecture transformers supports (llama, qwen2, mistral, ...).",
            ) from None
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # transformers copies the whole GGUF as a "tokenizer.model"; tokenizer.json carries the vocabulary.
        if (tmp / "tokenizer.json").exists():
            (tmp / "tokenizer.model").unlink(missing_ok=True)
    return Path(out)
