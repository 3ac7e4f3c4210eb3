"""read_gguf and the llama.cpp field checks on any bytes: a GGUFInfo or a one-line ModelFileError that names
the file and the field, never another exception (no model needed; every file is written here)."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from edgekit.errors import ModelFileError
from edgekit.runtime.gguf import GGUFInfo, read_gguf, read_gguf_cached
from edgekit.runtime.llamacpp_fields import check_model, check_vocab

from .gguf_bytes import (
    ARRAY,
    F32,
    F32_T,
    I32,
    STRING,
    U8,
    U32,
    U64,
    GGUFBytes,
    f32,
    gguf,
    model_kvs,
    model_tensors,
    nested_array,
    small_model,
)


def write(tmp_path: Path, data: bytes | bytearray | GGUFBytes, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data.buf if isinstance(data, GGUFBytes) else data))
    return path


def refused(path: Path, *needles: str, check: bool = False) -> ModelFileError:
    """The ModelFileError read_gguf (or, with ``check``, the llama.cpp field check) raises for ``path``:
    one line, naming the file and each of ``needles``."""
    with pytest.raises(ModelFileError) as info:
        parsed = read_gguf(path)
        if check:
            check_model(path, parsed)
    err = info.value
    assert "\n" not in str(err) and err.hint
    assert str(path) in err.message
    for needle in needles:
        assert needle in err.message, err.message
    return err


# --- the small model itself ---------------------------------------------------------------------


def test_small_model_reads_and_passes(tmp_path: Path) -> None:
    g = small_model()
    path = write(tmp_path, g)
    info = read_gguf(path)
    assert info.architecture == "llama" and info.context_length == 128
    assert info.chat_template == "{{ messages }}"
    assert info.arrays["tokenizer.ggml.tokens"].count == 4
    assert info.arrays["tokenizer.ggml.token_type"].values == (1, 1, 1, 1)
    assert [t.name for t in info.tensors][:2] == ["token_embd.weight", "blk.0.attn_norm.weight"]
    assert info.data_end == len(g.buf)  # the last tensor ends the file
    check_model(path, info)


def test_nesting_within_the_bound_reads(tmp_path: Path) -> None:
    path = write(tmp_path, small_model(deep=(ARRAY, nested_array(8))))
    assert read_gguf(path).arrays["deep"].item_type == ARRAY


# --- fields the reader uses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [(U32, 0), (U32, 3), (U32, 48), (STRING, "32"), (U64, 32), (F32, 32.0), (ARRAY, (U32, [32]))],
    ids=["zero", "three", "48", "string", "uint64", "float", "array"],
)
def test_bad_alignment(value: tuple[int, object], tmp_path: Path) -> None:
    refused(write(tmp_path, small_model(general__alignment=value)), "general.alignment")


def test_5000_nested_arrays(tmp_path: Path) -> None:
    path = write(tmp_path, small_model(deep=(ARRAY, nested_array(5000))))
    refused(path, "nested more than 8 deep", "'deep'")


def _with_count(g: GGUFBytes, index: int, n: int) -> bytearray:
    b = bytearray(g.buf)
    b[g.counts[index] : g.counts[index] + 8] = struct.pack("<Q", n)
    return b


@pytest.mark.parametrize("n", [2**64 - 1, 2**63, 2**40, 10_000])
def test_huge_counts_are_refused_before_reading(n: int, tmp_path: Path) -> None:
    g = small_model()
    for index, needle in [(0, "tensors"), (1, "keys")]:  # the header's tensor and key counts
        refused(write(tmp_path, _with_count(g, index, n)), needle, "truncated")
    tokens = gguf([("tokenizer.ggml.tokens", ARRAY, (STRING, ["a"] * 3))])
    refused(write(tmp_path, _with_count(tokens, 3, n)), "'tokenizer.ggml.tokens'", f"array of {n}")
    refused(write(tmp_path, _with_count(tokens, 4, n)), "'tokenizer.ggml.tokens'", "truncated")  # a string
    refused(write(tmp_path, _with_count(tokens, 2, n)), "key #0", "truncated")  # the key's length


def test_unknown_value_types(tmp_path: Path) -> None:
    g = small_model()
    b = bytearray(g.buf)
    b[g.types[0] : g.types[0] + 4] = struct.pack("<I", 13)
    refused(write(tmp_path, b), "unknown value type 13", "'general.architecture'")
    arr = gguf([("a", ARRAY, (U8, [1, 2]))])
    b = bytearray(arr.buf)
    b[arr.types[1] : arr.types[1] + 4] = struct.pack("<I", 77)
    refused(write(tmp_path, b), "unknown item type 77", "'a'")


def test_duplicate_and_empty_keys(tmp_path: Path) -> None:
    kvs = model_kvs()
    refused(write(tmp_path, gguf([*kvs, kvs[2]], model_tensors())), "appears twice", "'llama.block_count'")
    refused(write(tmp_path, gguf([("", U32, 1)])), "empty key")


def _tensor_file(dims: tuple[int, ...], ttype: int = F32_T, data: bytes = b"", offset: int = 0) -> bytes:
    g = gguf([("general.architecture", STRING, "llama")], [("w", dims, ttype, data)])
    if offset:  # the tensor's offset field: the 8 bytes before the data section's padding
        at = g.types[-1] + 4
        g.buf[at : at + 8] = struct.pack("<Q", offset)
    return bytes(g.buf)


def test_tensor_shapes_and_offsets(tmp_path: Path) -> None:
    refused(write(tmp_path, _tensor_file((2**32, 2**32), data=f32(4))), "tensor 'w'", "64-bit count")
    refused(write(tmp_path, _tensor_file((48,), ttype=8, data=bytes(34))), "tensor 'w'", "block size 32")
    refused(write(tmp_path, _tensor_file((4,), data=f32(4), offset=8)), "tensor 'w'", "alignment 32")
    refused(write(tmp_path, _tensor_file((4,), data=f32(4), offset=2**40)), "tensor 'w'", "truncated")
    refused(write(tmp_path, _tensor_file((1000,), data=f32(4))), "tensor 'w'", "truncated")
    nine = gguf([], [("w", (1,) * 9, F32_T, f32(1))])
    refused(write(tmp_path, nine), "9 dimensions")


# --- the llama.cpp field checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"llama__block_count": (U32, 0)}, ["llama.block_count is 0", "1 to 512"]),
        ({"llama__block_count": (U32, 1000)}, ["llama.block_count is 1000"]),
        ({"llama__block_count": (U32, 65536)}, ["llama.block_count is 65536"]),
        ({"llama__block_count": (U32, 1)}, ["llama.block_count is 1", "block 1"]),
        ({"llama__block_count": (U32, 3)}, ["llama.block_count is 3", "2 blocks"]),
        ({"llama__block_count": (STRING, "2")}, ["llama.block_count is a string"]),
        ({"llama__block_count": None}, ["llama.block_count is missing"]),
        ({"llama__context_length": (U32, 2**32 - 1)}, ["llama.context_length is 4294967295"]),
        ({"llama__context_length": (U32, 0)}, ["llama.context_length is 0"]),
        ({"llama__embedding_length": (U32, 0)}, ["llama.embedding_length is 0"]),
        ({"llama__attention__head_count": (U32, 0)}, ["llama.attention.head_count is 0"]),
        ({"llama__attention__head_count": None}, ["llama.attention.head_count is missing"]),
        ({"llama__attention__head_count": (U32, 5)}, ["not divisible by 5"]),
        ({"llama__attention__head_count_kv": (U32, 0)}, ["llama.attention.head_count_kv is 0"]),
        ({"llama__attention__head_count_kv": (U32, 3)}, ["llama.attention.head_count_kv is 3"]),
        ({"llama__attention__head_count": (ARRAY, (U32, [4]))}, ["1 values for 2 blocks"]),
        ({"llama__expert_count": (U32, 1025)}, ["llama.expert_count is 1025"]),
        ({"llama__expert_used_count": (U32, 2)}, ["llama.expert_used_count is 2 with 0 experts"]),
        ({"llama__expert_count": (U32, 4)}, ["llama.expert_used_count is 0 with 4 experts"]),
        ({"llama__expert_group_count": (U32, 2)}, ["llama.expert_group_count is 2"]),
        (
            {"llama__expert_count": (U32, 8), "llama__expert_used_count": (U32, 2)}
            | {"llama__expert_group_count": (U32, 3)},
            ["llama.expert_group_count 3"],
        ),
        ({"llama__nextn_predict_layers": (U32, 3)}, ["llama.nextn_predict_layers is 3"]),
        ({"llama__rope__scaling__type": (STRING, "bogus")}, ["llama.rope.scaling.type is 'bogus'"]),
        ({"tokenizer__ggml__model": None}, ["tokenizer.ggml.model is missing"]),
        ({"tokenizer__ggml__model": (U32, 2)}, ["tokenizer.ggml.model is a uint32"]),
        ({"tokenizer__ggml__tokens": None}, ["tokenizer.ggml.tokens is missing"]),
        ({"tokenizer__ggml__tokens": (STRING, "abc")}, ["tokenizer.ggml.tokens is not an array"]),
        ({"tokenizer__ggml__tokens": (ARRAY, (I32, [1, 2, 3, 4]))}, ["array of int32"]),
        ({"tokenizer__ggml__token_type": (ARRAY, (I32, [1]))}, ["token_type has 1 items for 4 tokens"]),
        ({"tokenizer__ggml__token_type": (ARRAY, (U8, [1] * 4))}, ["token_type is an array of uint8"]),
        ({"tokenizer__ggml__scores": (ARRAY, (STRING, list("abcd")))}, ["tokenizer.ggml.scores"]),
        ({"tokenizer__ggml__scores": (ARRAY, (F32, [0.0] * 9))}, ["scores has 9 items for 4 tokens"]),
        ({"tokenizer__ggml__merges": None}, ["tokenizer.ggml.merges is missing"]),
    ],
)
def test_fields_llama_cpp_asserts_on(
    override: dict[str, tuple[int, object] | None], needles: list[str], tmp_path: Path
) -> None:
    refused(write(tmp_path, small_model(**override)), *needles, check=True)


def test_vocab_fields_alone(tmp_path: Path) -> None:
    """check_vocab (what the tokenizer probe runs first) ignores the hyperparameters."""
    path = write(tmp_path, small_model(llama__block_count=(U32, 0)))
    check_vocab(path, read_gguf(path))
    path = write(tmp_path, small_model(tokenizer__ggml__token_type=(ARRAY, (I32, [1]))))
    with pytest.raises(ModelFileError, match="token_type"):
        check_vocab(path, read_gguf(path))


def test_unknown_tensor_type(tmp_path: Path) -> None:
    tensors = [*model_tensors(), ("odd.weight", (4,), 99, bytes(16))]
    path = write(tmp_path, gguf(model_kvs(), tensors))
    assert read_gguf(path).data_end is None  # the reader cannot size it, and says so
    refused(path, "tensor 'odd.weight'", "ggml type 99", check=True)


def test_recurrent_models_may_have_no_heads(tmp_path: Path) -> None:
    kvs = [
        (k.replace("llama.", "mamba."), t, v) for k, t, v in model_kvs(llama__attention__head_count=(U32, 0))
    ]
    path = write(tmp_path, gguf([(k, t, "mamba" if k == "general.architecture" else v) for k, t, v in kvs]))
    check_model(path, read_gguf(path))


# --- fuzzing ------------------------------------------------------------------------------------

HUGE = [2**64 - 1, 2**63, 2**62, 2**32, 2**32 - 1, 2**31, 1 << 24, 65536, 1000]


def _mutants(rng: random.Random) -> bytes:
    """One mutation of the small model: a cut, flipped bytes, a huge count, a bad type, deep nesting, a
    field of another type or value, or spliced bytes (sometimes two of them)."""
    g = small_model()
    b = bytearray(g.buf)
    for _ in range(1 + (rng.random() < 0.3)):
        kind = rng.randrange(7)
        if kind == 0:
            b = b[: rng.randrange(len(b) + 1)]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                if b:
                    b[rng.randrange(min(len(b), g.header_end))] = rng.randrange(256)
        elif kind == 2 and len(b) >= g.header_end:
            at = rng.choice(g.counts)
            n = rng.choice([*HUGE, rng.getrandbits(64), len(b), len(b) + 1, 0])
            b[at : at + 8] = struct.pack("<Q", n)
        elif kind == 3 and len(b) >= g.header_end:
            at = rng.choice(g.types)
            b[at : at + 4] = struct.pack(
                "<I", rng.choice([rng.randrange(16), ARRAY, STRING, 2**32 - 1, 40, 99])
            )
        elif kind == 4:
            b = bytearray(small_model(deep=(ARRAY, nested_array(rng.choice([2, 9, 100, 5000])))).buf)
        elif kind == 5:
            key = rng.choice([k.replace(".", "__") for k, _, _ in model_kvs()] + ["general__alignment"])
            value: object = rng.choice([0, 1, 3, 33, 2**32 - 1, rng.getrandbits(32)])
            vtype = rng.choice([U32, U64, I32, STRING, F32, ARRAY])
            if vtype == I32:
                value = int(value) % 2**31  # type: ignore[call-overload]
            elif vtype == STRING:
                value = str(value)
            elif vtype == F32:
                value = float(rng.choice([0.0, 1.5, float("nan"), float("inf")]))
            elif vtype == ARRAY:
                value = (STRING, ["x"] * 3) if rng.random() < 0.5 else (U32, [4, 4])
            b = bytearray(small_model(**{key: (vtype, value)}).buf)
        else:
            at = rng.randrange(len(b) + 1)
            b[at:at] = rng.randbytes(rng.randint(1, 16))
    return bytes(b)


def test_header_fuzz(tmp_path: Path) -> None:
    rng = random.Random(20240616)
    path = tmp_path / "fuzz.gguf"
    start, parsed, refused_ = time.perf_counter(), 0, 0
    for i in range(2000):
        data = _mutants(rng)
        path.write_bytes(data)
        try:
            info = read_gguf(path)
            assert isinstance(info, GGUFInfo)
            parsed += 1
            check_model(path, info)
        except ModelFileError as e:
            refused_ += 1
            assert "\n" not in str(e) and str(path) in e.message, (i, e)
        except Exception as e:  # anything else is the bug this test exists for
            raise AssertionError(f"case {i}: {type(e).__name__}: {e} from {data[:64]!r}...") from e
    assert parsed > 100 and refused_ > 1000  # the mutations reach both sides
    assert time.perf_counter() - start < 30


def test_block_sizes_come_from_the_bundled_ggml() -> None:
    """Asked of llama-cpp-python's ggml, not a table of our own: types it removed (Q4_0_4_4 = 31, the
    deprecated 4 and 5) are absent, so a file using them is refused before llama.cpp sees it; Q8_1 is 36
    bytes a block there (a hand table once said 40)."""
    from edgekit.runtime.gguf import ggml_blocks

    blocks = ggml_blocks()
    assert blocks[2] == (32, 18) and blocks[12] == (256, 144) and blocks[9] == (32, 36)
    assert not {4, 5, 31, 32, 33, 36, 37, 38} & set(blocks)


def test_a_header_read_once_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    """The cached read gives what a fresh read gives; an edit (new size or ctime) is read again, so a file
    damaged after its first load is refused as it would be without the cache."""
    path = write(tmp_path, small_model())
    cache = tmp_path / "cache"
    fresh = read_gguf(path)
    assert read_gguf_cached(path, cache) == fresh  # first read: remembered
    assert len(list((cache / "headers").iterdir())) == 1
    assert read_gguf_cached(path, cache) == fresh  # from the memo
    path.write_bytes(path.read_bytes()[:100])  # cut short after it was remembered
    with pytest.raises(ModelFileError):
        read_gguf_cached(path, cache)
