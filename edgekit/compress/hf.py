"""GGUF -> Hugging Face folder (dequantized to float32) with transformers, for sources that ship only GGUF.

transformers reads GGUF (it needs ``accelerate`` for that) and dequantizes every tensor; the saved folder
is an ordinary safetensors checkpoint that the converters, the ONNX exporter and distillation accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.compress.step import StepContext, cached_step
from edgekit.config import Settings
from edgekit.errors import MissingDependencyError, ModelFileError
from edgekit.files import ProgressFn, atomic_output, no_progress

# Bumped when gguf_to_hf writes a different folder for the same GGUF, so caches keyed by it start over
# (2: the tokenizer follows the GGUF's pre-tokenizer, BOS and EOS; see match_gguf_tokenizer).
HF_LAYOUT = 2
DEQUANTIZE = {"layout": HF_LAYOUT}
"""The ``dequantize`` step's settings (part of its cache key)."""
TORCH_EXTRA = "pip install 'edgekit[torch]' torch==2.13.0"


def require(*modules: str, extra: str = TORCH_EXTRA) -> None:
    """Fail with the pip command to run when an optional dependency is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"this step needs {', '.join(missing)}, which is not installed", f"Run: {extra}"
        )


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' own notices and progress bars (the legacy-tokenizer notice, "Converting and
    de-quantizing GGUF tensors") stay off while edgekit drives it; its settings are put back after."""
    import functools
    import importlib

    from transformers.utils import logging as tf_logging

    level, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    # The GGUF reader draws its bar with tqdm directly, past transformers' own switch.
    gguf_utils = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        setattr(gguf_utils, "tqdm", functools.partial(bar, disable=True))  # noqa: B010
    try:
        yield
    finally:
        tf_logging.set_verbosity(level)
        if bars:
            tf_logging.enable_progress_bar()
        if bar is not None:
            setattr(gguf_utils, "tqdm", bar)  # noqa: B010


def gguf_to_hf(gguf: Path, out: Path) -> Path:
    """Dequantize ``gguf`` into a Hugging Face folder at ``out`` (written atomically). Returns ``out``."""
    require("torch", "transformers", "accelerate")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise ModelFileError(f"{gguf}: no such GGUF file")
    with atomic_output(Path(out), folder=True) as tmp, _quiet_transformers():
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
            match_gguf_tokenizer(tmp, gguf)
    return Path(out)


ENCODER_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra", "deberta", "deberta-v2"}
)


def config_json(folder: Path) -> dict[str, Any]:
    """The folder's config.json, or {} when it is missing or unreadable."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def is_encoder(folder: Path) -> bool:
    """True for a BERT-like encoder folder (the sentence-embedding and classifier path)."""
    config = config_json(folder)
    archs = config.get("architectures") or []
    if any(str(a).endswith("ForCausalLM") for a in archs):
        return False
    return config.get("model_type") in ENCODER_TYPES


def bert_safetensors(folder: Path) -> bool:
    """A BERT folder with safetensors weights: its int8 ONNX build is the deterministic, torch-free
    ``bert-encoder`` pass (numpy and onnxruntime only), the one the model store pins
    ``all-minilm-l6-v2-onnx`` with."""
    return config_json(folder).get("model_type") == "bert" and (Path(folder) / "model.safetensors").is_file()


def dequantized(gguf: Path, sha256: str, settings: Settings, progress: ProgressFn = no_progress) -> Path:
    """``gguf`` (whose content hash is ``sha256``) as a Hugging Face folder, dequantized once into the
    compression cache and reused by whoever needs it next: a recipe's ``dequantize`` step (same key, same
    folder), quantize's ONNX export, a distillation teacher, the tests and benchmarks."""
    return cached_step(
        "dequantize",
        Dequantize(),
        {"model": (Path(gguf), sha256)},
        DEQUANTIZE,
        "hf",
        folder=True,
        settings=settings,
        progress=progress,
    )


# llama.cpp pre-tokenizer names -> the tokenizers pre-tokenizer that splits text the same way.
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    "gpt-2": _BYTE_LEVEL,
    "smollm": {
        "type": "Sequence",
        "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL],
    },
}


def _gguf_field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    value = field.parts[field.data[0]]
    return bytes(value).decode("utf-8") if field.types and field.types[0].name == "STRING" else value[0]


def match_gguf_tokenizer(folder: Path, gguf: Path) -> None:
    """Make the saved byte-level BPE tokenizer split, decode and add BOS the way the GGUF says.

    transformers' GGUF reader gives every byte-level vocabulary GPT-2's plain pre-tokenizer, byte fallback
    and a SentencePiece decoder, always adds a BOS, and names BOS as EOS. The GGUF's own metadata
    (``tokenizer.ggml.pre``, ``add_bos_token``, ``eos_token_id``) says what llama.cpp does; without this,
    SmolLM2's export tokenized "\n\n2024" differently from its GGUF (digits are split before the regex).
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    if _gguf_field(reader, "tokenizer.ggml.model") != "gpt2":
        return
    tok_file = folder / "tokenizer.json"
    data = json.loads(tok_file.read_text(encoding="utf-8"))
    pre = PRE_TOKENIZERS.get(str(_gguf_field(reader, "tokenizer.ggml.pre")))
    if pre is not None:
        data["pre_tokenizer"] = pre
    if isinstance(data.get("model"), dict):
        data["model"]["byte_fallback"] = False
    data["decoder"] = dict(_BYTE_LEVEL, add_prefix_space=True)
    add_bos = bool(_gguf_field(reader, "tokenizer.ggml.add_bos_token"))
    if not add_bos:
        data["post_processor"] = dict(_BYTE_LEVEL, add_prefix_space=True, trim_offsets=False)
    tok_file.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")

    eos_id = _gguf_field(reader, "tokenizer.ggml.eos_token_id")
    vocab = {t["id"]: t["content"] for t in data.get("added_tokens", [])}
    eos = vocab.get(int(eos_id)) if eos_id is not None else None
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if not path.is_file():
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        if name == "tokenizer_config.json":
            config["add_bos_token"] = add_bos
            if eos is not None:
                config["eos_token_id"] = int(eos_id)
        if eos is not None:
            config["eos_token"] = eos
        path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


class Dequantize:
    """The pipeline's ``dequantize`` step: GGUF -> Hugging Face folder (float32), for distillation and ONNX
    export of a GGUF-only source."""

    def run(self, ctx: StepContext) -> None:
        ctx.progress("dequantize", 0, 1)
        gguf_to_hf(ctx.inputs["model"], ctx.out)
        ctx.progress("dequantize", 1, 1)
