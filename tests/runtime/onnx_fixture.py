"""Builds a tiny but real causal LM as an ONNX folder in optimum's export layout.

No torch, no optimum: the graph is written with ``onnx.helper`` and the tokenizer is a byte-level BPE
trained in-process with ``tokenizers``. The model is a 2-layer pre-norm transformer with multi-head
attention over the concatenated past+current K/V (``Concat`` along the sequence axis), a causal mask
for the current chunk, learned position embeddings and seeded random weights. Files written::

    model.onnx  model.onnx_data  config.json  generation_config.json
    tokenizer.json  tokenizer_config.json  special_tokens_map.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Edge devices run small language models offline.",
    "A café in Zürich serves crème brûlée and naïve jokes.",
    "日本語のテキストも少し含めます。",
    "Emoji work too: 🙂 🚀 🎉 and arrows → ←.",
    "hello world, hello model, hello tokens",
    "Once upon a time there was a tiny transformer that could count: one two three four five.",
]

HIDDEN = 32
HEADS = 2
HEAD_DIM = HIDDEN // HEADS
LAYERS = 2
FFN = 64
MAX_POS = 128


def build_tokenizer(folder: Path, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES, trainer)
    tok.save(str(folder / "tokenizer.json"))
    return tok


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array, name)


def build_graph(vocab: int, *, seed: int = 0, logit_bias: np.ndarray | None = None) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(_init(name, array))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    const("embed", w(vocab, HIDDEN, scale=1.0))
    const("pos_embed", w(MAX_POS, HIDDEN, scale=0.5))
    const("heads_shape", np.array([0, 0, HEADS, HEAD_DIM], dtype=np.int64))
    const("merge_shape", np.array([0, 0, HIDDEN], dtype=np.int64))
    const("scale", np.array(1.0 / np.sqrt(HEAD_DIM), dtype=np.float32))
    const("neg", np.array(-1e9, dtype=np.float32))
    const("zero_i", np.array(0, dtype=np.int64))
    const("one_i", np.array(1, dtype=np.int64))
    const("axis0", np.array([0], dtype=np.int64))
    const("axis1", np.array([1], dtype=np.int64))
    const("axes_12", np.array([1, 2], dtype=np.int64))

    x = node("Gather", ["embed", "input_ids"], "tok_emb")
    p = node("Gather", ["pos_embed", "position_ids"], "pos_emb")
    x = node("Add", [x, p], "h0")

    # mask [1, 1, S, T]: key j is hidden from query i when j > past_len + i or attention_mask[j] == 0
    node("Shape", ["input_ids"], "seq_1d", start=1, end=2)
    node("Shape", ["attention_mask"], "total_1d", start=1, end=2)
    node("Squeeze", ["seq_1d", "axis0"], "seq")
    node("Squeeze", ["total_1d", "axis0"], "total")
    node("Sub", ["total", "seq"], "past_len")
    node("Range", ["past_len", "total", "one_i"], "q_pos")
    node("Range", ["zero_i", "total", "one_i"], "k_pos")
    node("Unsqueeze", ["q_pos", "axis1"], "q_pos_col")
    node("Greater", ["k_pos", "q_pos_col"], "future")  # [S, T]
    node("Cast", ["attention_mask"], "mask_bool", to=TensorProto.BOOL)
    node("Not", ["mask_bool"], "padded")  # [1, T]
    node("Unsqueeze", ["padded", "axes_12"], "padded_4d")  # [1, 1, 1, T]
    node("Or", ["future", "padded_4d"], "hidden_keys")  # [1, 1, S, T]

    ln = 0

    def layer_norm(inp: str) -> str:
        nonlocal ln
        ln += 1
        const(f"ln{ln}_g", (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        const(f"ln{ln}_b", (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))
        return node("LayerNormalization", [inp, f"ln{ln}_g", f"ln{ln}_b"], f"ln{ln}", axis=-1, epsilon=1e-5)

    for i in range(LAYERS):
        h = layer_norm(x)
        heads = {}
        for proj in ("q", "k", "v"):
            const(f"w{proj}{i}", w(HIDDEN, HIDDEN, scale=HIDDEN**-0.5))
            t = node("MatMul", [h, f"w{proj}{i}"], f"{proj}{i}_flat")
            t = node("Reshape", [t, "heads_shape"], f"{proj}{i}_heads")
            heads[proj] = node("Transpose", [t], f"{proj}{i}", perm=[0, 2, 1, 3])  # [1, H, S, D]
        k_all = node("Concat", [f"past_key_values.{i}.key", heads["k"]], f"present.{i}.key", axis=2)
        v_all = node("Concat", [f"past_key_values.{i}.value", heads["v"]], f"present.{i}.value", axis=2)
        kt = node("Transpose", [k_all], f"kt{i}", perm=[0, 1, 3, 2])
        s = node("MatMul", [heads["q"], kt], f"scores{i}_raw")
        s = node("Mul", [s, "scale"], f"scores{i}_scaled")
        s = node("Where", ["hidden_keys", "neg", s], f"scores{i}")
        a = node("Softmax", [s], f"attn{i}", axis=-1)
        o = node("MatMul", [a, v_all], f"ctx{i}")
        o = node("Transpose", [o], f"ctx{i}_t", perm=[0, 2, 1, 3])
        o = node("Reshape", [o, "merge_shape"], f"ctx{i}_merged")
        const(f"wo{i}", w(HIDDEN, HIDDEN, scale=HIDDEN**-0.5))
        o = node("MatMul", [o, f"wo{i}"], f"attn_out{i}")
        x = node("Add", [x, o], f"h{i}_attn")
        h = layer_norm(x)
        const(f"w1_{i}", w(HIDDEN, FFN, scale=HIDDEN**-0.5))
        const(f"w2_{i}", w(FFN, HIDDEN, scale=FFN**-0.5))
        f = node("MatMul", [h, f"w1_{i}"], f"ffn{i}_up")
        f = node("Relu", [f], f"ffn{i}_act")
        f = node("MatMul", [f, f"w2_{i}"], f"ffn{i}_down")
        x = node("Add", [x, f], f"h{i + 1}")

    h = layer_norm(x)
    const("lm_head", w(HIDDEN, vocab, scale=0.5))
    bias = np.zeros(vocab, dtype=np.float32) if logit_bias is None else logit_bias.astype(np.float32)
    const("lm_bias", bias)
    node("MatMul", [h, "lm_head"], "logits_raw")
    node("Add", ["logits_raw", "lm_bias"], "logits")

    kv_shape: list[str | int] = ["batch_size", HEADS, "past_sequence_length", HEAD_DIM]
    present_shape: list[str | int] = ["batch_size", HEADS, "total_sequence_length", HEAD_DIM]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]
        ),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", vocab])
    ]
    for i in range(LAYERS):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, kv_shape)
            )
            outputs.append(
                helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, present_shape)
            )
    graph = helper.make_graph(nodes, "edgekit_tiny_lm", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_tiny_lm(
    folder: Path, *, seed: int = 0, eos_bias: float = -20.0, external_data: bool = True
) -> Path:
    """Write the model folder and return it.

    ``eos_bias`` is added to the logits of the special tokens: the default keeps the random model from
    ever ending early (so max_tokens tests are stable); a large positive value makes it stop at once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    vocab = tok.get_vocab_size()
    special_ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    bias = np.zeros(vocab, dtype=np.float32)
    for tid in special_ids.values():
        bias[tid] = -20.0
    bias[special_ids["<|im_end|>"]] = eos_bias

    model = build_graph(vocab, seed=seed, logit_bias=bias)
    if external_data:
        onnx.save_model(
            model,
            str(folder / "model.onnx"),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx_data",
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(folder / "model.onnx"))

    im_end, eot = special_ids["<|im_end|>"], special_ids["<|endoftext|>"]
    config = {
        "architectures": ["EdgekitTinyForCausalLM"],
        "model_type": "edgekit-tiny",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "intermediate_size": FFN,
        "max_position_embeddings": MAX_POS,
        "bos_token_id": eot,
        "eos_token_id": im_end,
        "use_cache": True,
    }
    added = {
        str(tid): {"content": t, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t, tid in special_ids.items()
    }
    tok_config = {
        "added_tokens_decoder": added,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHATML_TEMPLATE,
        "model_max_length": MAX_POS,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    files = {
        "config.json": config,
        "generation_config.json": {"eos_token_id": [im_end, eot], "bos_token_id": eot},
        "tokenizer_config.json": tok_config,
        "special_tokens_map.json": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    }
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder
