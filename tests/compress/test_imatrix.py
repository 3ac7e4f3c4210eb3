"""Importance matrices: llama.cpp's file formats, the quantizer's parameter array, the eval-callback
collector, and the computation on the real default model (plus a quantization that uses it)."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli.errors import exit_code
from edgekit.compress.calibration import load_calibration
from edgekit.compress.imatrix import (
    Imatrix,
    ImatrixError,
    ImatrixMismatchError,
    check_imatrix,
    model_columns,
    read_imatrix,
    write_imatrix,
)
from edgekit.errors import EdgekitError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "recipes" / "data" / "calibration"


def _sample() -> Imatrix:
    rng = np.random.default_rng(7)
    values = {
        "blk.0.attn_q.weight": rng.random(576, dtype=np.float32),
        "blk.0.ffn_down.weight": rng.random(1536, dtype=np.float32),
        "blk.1.ffn_gate_exps.weight": rng.random(2 * 64, dtype=np.float32),  # two experts
    }
    counts = {
        "blk.0.attn_q.weight": np.array([1024], np.float32),
        "blk.0.ffn_down.weight": np.array([1024], np.float32),
        "blk.1.ffn_gate_exps.weight": np.array([300, 724], np.float32),
    }
    return Imatrix(values, counts, chunks=2, chunk_size=512, datasets=("calib",))


@pytest.mark.parametrize("suffix", [".gguf", ".dat"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    im = _sample()
    path = write_imatrix(im, tmp_path / f"m{suffix}")
    back = read_imatrix(path)
    assert back.names == im.names
    assert (back.chunks, back.chunk_size, back.datasets) == (2, 512, ("calib",))
    for name in im.names:
        np.testing.assert_allclose(back.values[name], im.values[name], rtol=1e-6)
    if suffix == ".gguf":  # the legacy format keeps one call count per tensor, not per expert
        assert all(np.array_equal(back.counts[n], im.counts[n]) for n in im.names)
        assert path.read_bytes()[:4] == b"GGUF"
    assert not list(tmp_path.glob(".*tmp"))


def test_reads_llama_imatrix_legacy_file(tmp_path: Path) -> None:
    """A .dat as llama-imatrix writes it: values are mean * ncall, then the chunk count and dataset."""
    mean = np.linspace(0.1, 2.0, 576, dtype=np.float32)
    name, dataset = b"blk.3.attn_v.weight", b"wiki.train.raw"
    raw = struct.pack("<i", 1) + struct.pack("<i", len(name)) + name + struct.pack("<ii", 4, 576)
    raw += (mean * np.float32(4)).astype("<f4").tobytes() + struct.pack("<ii", 4, len(dataset)) + dataset
    (tmp_path / "imatrix.dat").write_bytes(raw)
    im = read_imatrix(tmp_path / "imatrix.dat")
    np.testing.assert_allclose(im.values["blk.3.attn_v.weight"], mean, rtol=1e-6)
    assert im.chunks == 4 and im.dataset == "wiki.train.raw"


def test_reads_llama_imatrix_gguf_file(tmp_path: Path) -> None:
    """A GGUF laid out like llama-imatrix's: sums and counts per tensor (plus in_sum and stats, ignored);
    an expert that saw no tokens gets 1, as llama.cpp's loader gives it."""
    import gguf

    w = gguf.GGUFWriter(str(tmp_path / "imatrix.gguf"), arch="imatrix")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["a.txt", "b.txt"])
    w.add_uint32("imatrix.chunk_count", 10)
    w.add_uint32("imatrix.chunk_size", 512)
    sums = np.arange(1, 9, dtype=np.float32).reshape(2, 4)  # ne = [4 columns, 2 experts]
    w.add_tensor("blk.0.ffn_up_exps.weight.in_sum2", sums)
    w.add_tensor("blk.0.ffn_up_exps.weight.in_sum", sums)
    w.add_tensor("blk.0.ffn_up_exps.weight.counts", np.array([[4.0], [0.0]], np.float32))
    w.add_tensor("blk.0.ffn_up_exps.weight.stats", np.zeros(11, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    im = read_imatrix(tmp_path / "imatrix.gguf")
    assert im.names == ["blk.0.ffn_up_exps.weight"]
    np.testing.assert_allclose(im.values["blk.0.ffn_up_exps.weight"], [0.25, 0.5, 0.75, 1.0, 1, 1, 1, 1])
    assert (im.chunks, im.chunk_size, im.datasets) == (10, 512, ("a.txt", "b.txt"))


def test_corrupt_files_are_input_errors(tmp_path: Path) -> None:
    good = write_imatrix(_sample(), tmp_path / "good.dat").read_bytes()
    cases = {
        "truncated.dat": good[: len(good) // 2],
        "garbage.dat": b"\x00\x01\x02\x03 not an imatrix at all",
        "empty.dat": b"",
        "nan.dat": good.replace(good[20:24], struct.pack("<f", float("nan")), 1),
        "cut.gguf": write_imatrix(_sample(), tmp_path / "full.gguf").read_bytes()[:200],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImatrixError) as e:
            read_imatrix(tmp_path / name)
        assert exit_code(e.value) == 2 and name in e.value.message
    with pytest.raises(ImatrixError, match="no such file"):
        read_imatrix(tmp_path / "missing.gguf")


def test_quantize_params_array_is_null_terminated_and_points_at_the_values() -> None:
    im = _sample()
    q = im.to_quantize_params()
    assert len(q) == 3
    for i, name in enumerate(im.names):
        entry = q.array[i]
        assert entry.name == name.encode()
        assert entry.size == im.values[name].size
        got = np.ctypeslib.as_array(entry.data, shape=(entry.size,))
        np.testing.assert_array_equal(got, im.values[name])
    assert q.array[3].name is None and not q.array[3].data  # llama.cpp stops at the NULL name
    assert ctypes.addressof(q.pointer.contents) == ctypes.addressof(q.array)


def test_mismatched_tensor_names_or_columns(default_model_path: Path) -> None:
    foreign = Imatrix(
        {"model.layers.0.self_attn.q_proj": np.ones(576, np.float32)},
        {"model.layers.0.self_attn.q_proj": np.array([512], np.float32)},
        chunks=1,
    )
    with pytest.raises(ImatrixMismatchError, match="none of the importance matrix"):
        check_imatrix(foreign, default_model_path)
    wrong_width = Imatrix(
        {"blk.0.attn_q.weight": np.ones(896, np.float32)},
        {"blk.0.attn_q.weight": np.array([512], np.float32)},
        1,
    )
    with pytest.raises(ImatrixMismatchError, match="896 columns"):
        check_imatrix(wrong_width, default_model_path)
    cols = model_columns(default_model_path)
    assert cols["blk.0.ffn_down.weight"] == 1536 and cols["blk.0.attn_q.weight"] == 576


# --- the eval-callback collector, on tensors built with ggml itself -----------------------------------


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


@pytest.fixture
def ggml_graph() -> object:
    from edgekit.compress.passes.imatrix import _ggml

    lib = _ggml()
    lib.ggml_init.restype = ctypes.c_void_p
    lib.ggml_init.argtypes = [_InitParams]
    lib.ggml_new_tensor_2d.restype = ctypes.c_void_p
    lib.ggml_new_tensor_2d.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    lib.ggml_mul_mat.restype = ctypes.c_void_p
    lib.ggml_mul_mat.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.ggml_set_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.ggml_free.argtypes = [ctypes.c_void_p]
    ctx = lib.ggml_init(_InitParams(16 << 20, None, False))
    yield lib, ctx
    lib.ggml_free(ctx)


def _mul_mat(lib: ctypes.CDLL, ctx: int, act_type: int, rows: int) -> tuple[int, int]:
    weight = lib.ggml_new_tensor_2d(ctx, 0, 32, 8)  # ne = [32 input columns, 8 outputs]
    lib.ggml_set_name(weight, b"blk.4.ffn_up.weight")
    act = lib.ggml_new_tensor_2d(ctx, act_type, 32, rows)
    return lib.ggml_mul_mat(ctx, weight, act), act


def test_collector_sums_squared_activations_per_column(ggml_graph: tuple[ctypes.CDLL, int]) -> None:
    from edgekit.compress.passes.imatrix import _Stats, _Tensor

    lib, ctx = ggml_graph
    node, act = _mul_mat(lib, ctx, 0, 20)
    x = np.random.default_rng(1).normal(size=(20, 32)).astype(np.float32)
    ctypes.memmove(_Tensor.from_address(act).data, x.ctypes.data, x.nbytes)
    stats = _Stats(lib)
    assert stats.callback(node, True, None) is True
    assert stats.callback(node, False, None) is True
    assert stats.callback(node, False, None) is True
    np.testing.assert_allclose(stats.sums["blk.4.ffn_up.weight"], 2 * (x.astype(np.float64) ** 2).sum(0))
    assert stats.counts["blk.4.ffn_up.weight"].tolist() == [40]
    few, _ = _mul_mat(lib, ctx, 0, 4)
    assert stats.callback(few, True, None) is False  # tiny batches are skipped, like llama-imatrix
    assert stats.error is None


def test_collector_exception_stops_the_graph_instead_of_escaping_into_c(
    ggml_graph: tuple[ctypes.CDLL, int],
) -> None:
    from edgekit.compress.passes.imatrix import _Stats

    lib, ctx = ggml_graph
    node, _ = _mul_mat(lib, ctx, 1, 20)  # F16 activations: the collector refuses them
    stats = _Stats(lib)
    assert stats.callback(node, True, None) is False
    assert stats.callback(node, False, None) is False
    assert isinstance(stats.error, EdgekitError) and "float32" in str(stats.error)


# --- on the real default model ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def small_imatrix(default_model_path: Path) -> Imatrix:
    from edgekit.compress.passes.imatrix import compute_imatrix

    cal = load_calibration(SHIPPED / "chat.jsonl").subset(12)
    seen: list[tuple[int, int | None]] = []
    im = compute_imatrix(
        default_model_path, cal, n_ctx=256, max_chunks=2, progress=lambda s, d, t: seen.append((d, t))
    )
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    return im


@pytest.mark.model
@pytest.mark.slow
def test_compute_imatrix_on_the_default_model(small_imatrix: Imatrix, default_model_path: Path) -> None:
    im = small_imatrix
    cols = model_columns(default_model_path)
    layers = {n.split(".")[1] for n in cols if n.startswith("blk.")}
    assert len(im.values) == 7 * len(layers)  # q, k, v, output, gate, up, down in every block
    check_imatrix(im, default_model_path)
    for name in im.names:
        v = im.values[name]
        assert np.all(np.isfinite(v)) and np.all(v >= 0) and v.max() > 0
        assert im.counts[name].tolist() == [512]  # two windows of 256 tokens
    assert im.chunks == 2 and im.chunk_size == 256 and im.dataset == "chat.jsonl[:12]"


@pytest.mark.model
def test_compute_imatrix_bad_model_file_is_an_error_not_a_crash(
    tmp_path: Path, default_model_path: Path
) -> None:
    from edgekit.compress.passes.imatrix import compute_imatrix

    cal = load_calibration(SHIPPED / "chat.jsonl")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(default_model_path.read_bytes()[: 1 << 20])
    with pytest.raises(EdgekitError):
        compute_imatrix(cut, cal, max_chunks=1)
    with pytest.raises(EdgekitError, match="no such GGUF"):
        compute_imatrix(tmp_path / "missing.gguf", cal)


@pytest.mark.model
@pytest.mark.slow
def test_quantize_with_the_computed_imatrix(
    small_imatrix: Imatrix, default_f16_gguf: Path, tmp_path: Path
) -> None:
    """The matrix reaches llama.cpp's quantizer: Q4_0 rounds differently with it, and the result runs."""
    import edgekit
    from edgekit.compress.passes.gguf_quantize import quantize_gguf

    plain = quantize_gguf(default_f16_gguf, tmp_path / "plain.gguf", "Q4_0", threads=1)
    calibrated = quantize_gguf(
        default_f16_gguf, tmp_path / "cal.gguf", "Q4_0", imatrix=small_imatrix, threads=1
    )
    assert plain.read_bytes() != calibrated.read_bytes()
    with edgekit.load(calibrated, n_ctx=256) as model:
        reply = model.chat("Name a primary color.", temperature=0, max_tokens=8)
    assert reply.usage.completion_tokens > 0


@pytest.mark.model
def test_quantize_refuses_an_imatrix_made_for_another_model(
    default_f16_gguf: Path, tmp_path: Path, isolated: Path
) -> None:
    """A user's imatrix whose names match nothing in the model would be skipped silently by llama.cpp."""
    from edgekit.compress.quantize import quantize

    foreign = Imatrix(
        {"blk.0.attn_q.weight": np.ones(896, np.float32)},
        {"blk.0.attn_q.weight": np.array([512], np.float32)},
        1,
    )
    path = write_imatrix(foreign, tmp_path / "qwen.imatrix.gguf")
    with pytest.raises(ImatrixMismatchError, match="896 columns") as e:
        quantize(
            default_f16_gguf,
            "Q4_0",
            imatrix=path,
            out=tmp_path / "out.gguf",
            lock_path=isolated / "models.lock",
        )
    assert exit_code(e.value) == 2
    assert not (tmp_path / "out.gguf").exists()
