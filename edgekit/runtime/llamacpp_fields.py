"""The GGUF fields llama.cpp asserts on, checked before llama.cpp reads them.

llama.cpp checks many header fields with ``GGML_ASSERT``, which aborts the whole process (SIGABRT, no
message once logging is off) instead of failing the load: a ``block_count`` of 0 or more than 512, an
expert count over 1024 or experts used without experts, expert groups that do not divide the experts, an
unknown rope scaling type, more next-token layers than blocks (llama-model.cpp, ``load_hparams``). Others
it reads through raw pointers sized by a second field (token types and scores beside the token list).
``check_vocab`` covers the fields a vocabulary-only load reads, ``check_model`` those and the
hyperparameters and tensors of a full load; both raise a one-line ``ModelFileError`` naming the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgekit.errors import ModelFileError
from edgekit.runtime.gguf import (
    INTEGER_TYPES,
    REBUILD_HINT,
    STRING,
    GGUFInfo,
    a_type,
    ggml_blocks,
    shown,
    type_name,
)

LLAMA_MAX_LAYERS = 512  # llama-hparams.h
LLAMA_MAX_EXPERTS = 1024  # llama-hparams.cpp (1025 aborts the llama.cpp in llama-cpp-python 0.3.36)
INT32_MAX = (1 << 31) - 1  # llama_model_n_ctx_train and friends return int32
ROPE_SCALING_TYPES = frozenset({"none", "linear", "yarn", "longrope"})
NO_VOCAB = frozenset({"none", "no_vocab"})
INT32, FLOAT32 = 5, 6
_BLOCK = re.compile(r"blk\.(\d+)\.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class _Fields:
    """Typed access to one file's metadata; every failure names the file and the key."""

    def __init__(self, path: Path, info: GGUFInfo) -> None:
        self.path, self.info = path, info
        self.arch = info.architecture

    def fail(self, what: str, hint: str = REBUILD_HINT) -> ModelFileError:
        return ModelFileError(f"{self.path}: {what}", hint)

    def key(self, name: str) -> str:
        return f"{self.arch}.{name}"

    def integer(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        """The integer at ``key``, in lo..hi; ``default`` when absent (absent and no default: an error)."""
        if key not in self.info.types:
            if default is None:
                raise self.fail(f"{key} is missing; llama.cpp needs it to load a {self.arch} model")
            return default
        value: Any = self.info.metadata.get(key)
        if not _is_int(value):
            raise self.fail(f"{key} is {a_type(self.info.types[key])}, not an integer")
        if not lo <= value <= hi:
            raise self.fail(f"{key} is {value}; llama.cpp needs {lo} to {hi}")
        return int(value)

    def per_layer(self, key: str, n_layer: int) -> list[int] | None:
        """A per-layer integer: one value for every layer, or an array with one per layer."""
        if key not in self.info.types:
            return None
        array = self.info.arrays.get(key)
        if array is None:
            return [self.integer(key, 0, INT32_MAX)] * n_layer
        if array.item_type not in INTEGER_TYPES:
            raise self.fail(f"{key} is an array of {type_name(array.item_type)}, not of integers")
        if array.count != n_layer or array.values is None:
            raise self.fail(f"{key} has {array.count} values for {n_layer} blocks")
        if any(not 0 <= v <= INT32_MAX for v in array.values):
            raise self.fail(f"{key} holds a value outside 0 to {INT32_MAX}")
        return list(array.values)

    def string(self, key: str) -> str | None:
        if key not in self.info.types:
            return None
        value = self.info.metadata.get(key)
        if not isinstance(value, str):
            raise self.fail(f"{key} is {a_type(self.info.types[key])}, not a string")
        return value


def check_vocab(path: Path, info: GGUFInfo) -> None:
    """The tokenizer fields: a known kind of tokenizer, and token types and scores as long as the tokens."""
    fields = _Fields(path, info)
    model = fields.string("tokenizer.ggml.model")
    if model is None:
        raise fields.fail(
            "the file has no tokenizer (tokenizer.ggml.model is missing)",
            "Use a GGUF that carries its tokenizer, as llama.cpp's converters write it.",
        )
    if model in NO_VOCAB:
        return
    tokens = info.arrays.get("tokenizer.ggml.tokens")
    if tokens is None:
        missing = "tokenizer.ggml.tokens" not in info.types
        raise fields.fail(f"tokenizer.ggml.tokens is {'missing' if missing else 'not an array'}")
    if tokens.item_type != STRING or tokens.count == 0:
        what = f"of {type_name(tokens.item_type)}" if tokens.item_type != STRING else "empty"
        raise fields.fail(f"tokenizer.ggml.tokens is an array {what}; it must list the token strings")
    for key, item in (("tokenizer.ggml.token_type", INT32), ("tokenizer.ggml.scores", FLOAT32)):
        if key not in info.types:
            continue
        arr = info.arrays.get(key)
        if arr is None or arr.item_type != item:
            got = a_type(info.types[key]) if arr is None else f"an array of {type_name(arr.item_type)}"
            raise fields.fail(f"{key} is {got}; llama.cpp reads it as an array of {type_name(item)}")
        if arr.count != tokens.count:
            raise fields.fail(f"{key} has {arr.count} items for {tokens.count} tokens")
    merges = info.arrays.get("tokenizer.ggml.merges")
    if "tokenizer.ggml.merges" in info.types and (merges is None or merges.item_type != STRING):
        raise fields.fail("tokenizer.ggml.merges is not an array of strings")
    if model == "gpt2" and merges is None:
        raise fields.fail("tokenizer.ggml.merges is missing; a gpt2 (BPE) tokenizer needs its merges")


def check_model(path: Path, info: GGUFInfo) -> None:
    """Everything ``check_vocab`` checks, then the hyperparameters and tensors a full load reads."""
    check_vocab(path, info)
    fields = _Fields(path, info)
    if fields.string("general.architecture") is None:
        raise fields.fail("general.architecture is missing")
    n_layer = fields.integer(fields.key("block_count"), 1, LLAMA_MAX_LAYERS)
    _check_blocks(fields, n_layer)
    fields.integer(fields.key("context_length"), 1, INT32_MAX)
    n_embd = fields.integer(fields.key("embedding_length"), 1, INT32_MAX)
    fields.integer(fields.key("feed_forward_length"), 0, INT32_MAX, default=0)
    _check_heads(fields, n_layer, n_embd)
    _check_experts(fields, n_layer)
    fields.integer(fields.key("nextn_predict_layers"), 0, n_layer, default=0)
    if fields.arch == "wavtokenizer-dec":
        fields.integer(fields.key("posnet.block_count"), 0, n_layer, default=0)
        fields.integer(fields.key("convnext.block_count"), 0, n_layer, default=0)
    rope = fields.string(fields.key("rope.scaling.type"))
    if rope is not None and rope not in ROPE_SCALING_TYPES:
        known = ", ".join(sorted(ROPE_SCALING_TYPES))
        raise fields.fail(f"{fields.key('rope.scaling.type')} is {shown(rope)}; llama.cpp knows {known}")
    for t in info.tensors:
        if t.ggml_type not in ggml_blocks():
            raise fields.fail(f"tensor {shown(t.name)} has ggml type {t.ggml_type}, which llama.cpp lacks")


def _check_blocks(fields: _Fields, n_layer: int) -> None:
    """Tensors ``blk.N.*`` for exactly blocks 0..block_count-1 (a split file holds only some of them)."""
    key = fields.key("block_count")
    blocks = {int(m.group(1)) for t in fields.info.tensors if (m := _BLOCK.match(t.name))}
    if not blocks:
        return  # a vocabulary-only file, or a split whose first part holds no blocks
    if max(blocks) >= n_layer:
        raise fields.fail(f"{key} is {n_layer} but the file has tensors of block {max(blocks)}")
    split = fields.info.metadata.get("split.count", 1)
    if (not _is_int(split) or split <= 1) and len(blocks) < n_layer:
        raise fields.fail(f"{key} is {n_layer} but the file has tensors for {len(blocks)} blocks")


def _check_heads(fields: _Fields, n_layer: int, n_embd: int) -> None:
    """Attention heads: a model with attention has some, a divisor of the embedding when the head size is
    not given, and key/value heads that divide them."""
    key, kv_key = fields.key("attention.head_count"), fields.key("attention.head_count_kv")
    heads = fields.per_layer(key, n_layer)
    recurrent = fields.arch.startswith(("mamba", "rwkv", "arwkv"))  # no attention: head_count 0 is legal
    if not recurrent and (heads is None or max(heads) == 0):
        raise fields.fail(f"{key} is {'missing' if heads is None else 0}; a transformer needs heads")
    if heads is None:
        return
    n_head = max(heads)
    explicit = fields.key("attention.key_length") in fields.info.types
    if n_head and not explicit and n_embd % n_head:
        raise fields.fail(
            f"{fields.key('embedding_length')} {n_embd} is not divisible by {n_head} attention heads"
        )
    kv = fields.per_layer(kv_key, n_layer)
    for il, (h, k) in enumerate(zip(heads, kv or heads, strict=True)):
        if h and (k == 0 or h % k):
            raise fields.fail(f"{kv_key} is {k} in block {il}, which does not divide its {h} heads")


def _check_experts(fields: _Fields, n_layer: int) -> None:
    """Mixture-of-experts counts, as llama.cpp asserts them."""
    n_expert = fields.integer(fields.key("expert_count"), 0, LLAMA_MAX_EXPERTS, default=0)
    used = max(fields.per_layer(fields.key("expert_used_count"), n_layer) or [0])
    groups = fields.integer(fields.key("expert_group_count"), 0, INT32_MAX, default=0)
    group_used = fields.integer(fields.key("expert_group_used_count"), 0, INT32_MAX, default=0)
    if fields.arch in ("hunyuan-dense", "hunyuan-vl") and n_expert <= 1:
        n_expert = used = 0  # llama.cpp reads these two as dense models
    if used > n_expert:
        raise fields.fail(f"{fields.key('expert_used_count')} is {used} with {n_expert} experts")
    if n_expert and not used:
        raise fields.fail(f"{fields.key('expert_used_count')} is 0 with {n_expert} experts")
    group_key = fields.key("expert_group_count")
    if not n_expert and groups:
        raise fields.fail(f"{group_key} is {groups} in a model without experts")
    if n_expert and groups >= n_expert:
        raise fields.fail(f"{group_key} is {groups}, not fewer than the {n_expert} experts")
    if groups > 1 and (n_expert % groups or not 0 < group_used < groups):
        raise fields.fail(
            f"{group_key} {groups} and {fields.key('expert_group_used_count')} {group_used} do not fit "
            f"{n_expert} experts"
        )
