"""Importance matrices: per weight tensor, the mean squared activation of each input column.

The quantizer weights each column's rounding error by how strongly that column is driven at run time
(llama.cpp's ``quant_weights``), so columns that carry large activations are kept more exact.

Files, both as written by llama.cpp's ``llama-imatrix`` so users can bring their own:

- **GGUF** (llama.cpp's current default): ``general.type = "imatrix"``, ``imatrix.datasets`` (strings),
  ``imatrix.chunk_count`` and ``imatrix.chunk_size`` (u32); per weight tensor ``NAME.in_sum2`` (F32,
  ne = [columns, matrices]: sums of squared activations) and ``NAME.counts`` (F32, ne = [1, matrices]:
  activation rows summed). Other tensors (``NAME.in_sum``, ``NAME.stats``) are ignored when reading.
- **legacy .dat**: int32 entry count; per entry int32 name length, name, int32 ``ncall``, int32 ``nval``,
  float32[nval] (mean square times ``ncall``); then int32 chunk count, int32 length and the dataset name.

Tensor names are GGUF tensor names (``blk.0.attn_q.weight``, ``blk.0.ffn_down.weight``, ...).
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError
from edgekit.files import atomic_output


class ImatrixError(InputError):
    default_hint = "Give an importance matrix written by llama-imatrix or edgekit (.gguf or legacy .dat)."


class ImatrixMismatchError(InputError):
    default_hint = "Compute the importance matrix on this model (or one with the same architecture and size)."


@dataclass(frozen=True)
class Imatrix:
    """Per tensor name: float32 mean squared activation per input column (matrices stacked for MoE
    experts), and how many activation rows each matrix saw."""

    values: Mapping[str, np.ndarray]
    counts: Mapping[str, np.ndarray]
    """float32 [matrices] per tensor: activation rows (tokens) summed into ``values``."""
    chunks: int
    chunk_size: int = 0
    datasets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.values) != set(self.counts):
            raise ValueError("values and counts must name the same tensors")
        for name, v in self.values.items():
            c = self.counts[name]
            if v.dtype != np.float32 or v.ndim != 1 or c.ndim != 1 or c.size == 0 or v.size % c.size:
                raise ValueError(f"{name}: values must be float32 [columns * matrices], counts [matrices]")

    @property
    def names(self) -> list[str]:
        return sorted(self.values)

    @property
    def dataset(self) -> str:
        return self.datasets[-1] if self.datasets else ""

    @cached_property
    def sha256(self) -> str:
        """Content hash (names, values, counts, chunks): recorded in the output's provenance."""
        h = hashlib.sha256()
        for name in self.names:
            h.update(name.encode() + b"\0")
            h.update(self.values[name].tobytes())
            h.update(self.counts[name].astype(np.float32).tobytes())
        h.update(struct.pack("<ii", self.chunks, self.chunk_size))
        return h.hexdigest()

    # --- checks and the quantizer's view -------------------------------------------------------------

    def check_model(self, tensors: Mapping[str, int]) -> None:
        """Raise ``ImatrixMismatchError`` unless the entries name tensors of this model with matching
        column counts. ``tensors``: GGUF weight name -> input columns (ne[0])."""
        missing = [n for n in self.names if n not in tensors]
        if len(missing) == len(self.values):
            raise ImatrixMismatchError(
                f"none of the importance matrix's {len(missing)} tensor names is in the model "
                f"(first: {missing[0]!r}; the model has e.g. {sorted(tensors)[:2]})"
            )
        if missing:
            raise ImatrixMismatchError(
                f"{len(missing)} importance matrix entries name tensors the model does not have "
                f"(first: {missing[0]!r})"
            )
        for name in self.names:
            cols, mats = self.values[name].size // self.counts[name].size, self.counts[name].size
            if cols != tensors[name]:
                raise ImatrixMismatchError(
                    f"{name}: the importance matrix has {cols} columns ({mats} matrices), the model's "
                    f"tensor {tensors[name]}"
                )

    def to_quantize_params(self) -> QuantizeImatrix:
        """The ``llama_model_imatrix_data`` array for ``llama_model_quantize_params.imatrix``.

        Keep the returned object alive until the quantize call returns: it owns the buffers the array
        points at. The array ends with an entry whose name is NULL (llama.cpp stops there).
        """
        return QuantizeImatrix(self)


class QuantizeImatrix:
    """Owns the ctypes array handed to llama.cpp's quantizer and the float buffers it points into."""

    def __init__(self, imatrix: Imatrix) -> None:
        import llama_cpp

        names = imatrix.names
        self._names = [n.encode() for n in names]
        self._buffers = [np.ascontiguousarray(imatrix.values[n], dtype=np.float32) for n in names]
        array_type = llama_cpp.llama_model_imatrix_data * (len(names) + 1)
        self.array = array_type()
        for i, (name, buf) in enumerate(zip(self._names, self._buffers, strict=True)):
            self.array[i].name = name
            self.array[i].data = buf.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            self.array[i].size = buf.size
        # array[len(names)] stays zeroed: the NULL-name terminator.

    def __len__(self) -> int:
        return len(self._names)

    @property
    def pointer(self) -> Any:
        """What to assign to ``params.imatrix``."""
        import llama_cpp

        return ctypes.cast(self.array, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))


def model_columns(model: str | Path) -> dict[str, int]:
    """GGUF weight tensor name -> input columns (ne[0]) of the matrices in ``model`` (header only)."""
    from edgekit.runtime.gguf import read_gguf

    return {t.name: t.dims[0] for t in read_gguf(Path(model)).tensors if len(t.dims) >= 2}


def check_imatrix(imatrix: Imatrix, model: str | Path) -> None:
    """Raise ``ImatrixMismatchError`` unless ``imatrix`` fits the GGUF ``model`` (names and columns).

    llama.cpp's quantizer silently skips entries it cannot match, so a matrix made for another model
    would quietly do nothing; call this before quantizing with a matrix the user brought.
    """
    imatrix.check_model(model_columns(model))


# --- files ---------------------------------------------------------------------------------------------


def read_imatrix(path: str | Path, *, chunk_size: int = 512) -> Imatrix:
    """Read a GGUF or legacy .dat importance matrix. ``chunk_size`` is only used for legacy files,
    which do not record it (llama-imatrix's default is 512)."""
    path = Path(path)
    try:
        head = path.read_bytes()[:4] if path.is_file() else b""
    except OSError as e:
        raise ImatrixError(f"{path}: cannot read ({e.strerror})") from None
    if not path.is_file():
        raise ImatrixError(f"{path}: no such file")
    if head == b"GGUF":
        return _read_gguf(path)
    return _read_dat(path, chunk_size)


def write_imatrix(imatrix: Imatrix, path: str | Path, *, legacy: bool | None = None) -> Path:
    """Write atomically; GGUF unless ``legacy`` (default: legacy when the name ends in ``.dat``)."""
    path = Path(path)
    if legacy is None:
        legacy = path.suffix == ".dat"
    with atomic_output(path) as tmp:
        if legacy:
            tmp.write_bytes(_dat_bytes(imatrix))
        else:
            _write_gguf(imatrix, tmp)
    return path


def _corrupt(path: Path, why: str) -> ImatrixError:
    return ImatrixError(f"{path}: not a readable importance matrix ({why})")


def _read_dat(path: Path, chunk_size: int) -> Imatrix:
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise _corrupt(path, f"ends at byte {len(data)} inside an entry")
        out = struct.unpack_from(fmt, data, pos)
        pos += size
        return out

    (n_entries,) = take("<i")
    if n_entries < 1 or n_entries > 1_000_000:
        raise _corrupt(path, f"entry count {n_entries}")
    values: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for _ in range(n_entries):
        (name_len,) = take("<i")
        if not 0 < name_len <= 4096:
            raise _corrupt(path, f"name length {name_len}")
        try:
            name = take(f"<{name_len}s")[0].decode("utf-8")
        except UnicodeDecodeError:
            raise _corrupt(path, "tensor name is not UTF-8") from None
        ncall, nval = take("<ii")
        if nval < 1 or nval > 1 << 28:
            raise _corrupt(path, f"{name}: value count {nval}")
        v = (
            np.frombuffer(data, dtype="<f4", count=nval, offset=pos).astype(np.float32)
            if (pos + 4 * nval <= len(data))
            else None
        )
        if v is None:
            raise _corrupt(path, f"{name}: values cut short")
        pos += 4 * nval
        if ncall > 0:  # stored as mean * ncall (llama-imatrix's legacy writer)
            v = v / np.float32(ncall)
        values[name] = v.astype(np.float32)
        counts[name] = np.array([max(ncall, 1) * chunk_size], dtype=np.float32)
    chunks, dataset = 0, ""
    if pos + 4 <= len(data):
        (chunks,) = take("<i")
        if pos + 4 <= len(data):
            (n,) = take("<i")
            if 0 < n <= len(data) - pos:
                dataset = data[pos : pos + n].decode("utf-8", errors="replace")
    _check_finite(path, values)
    return Imatrix(values, counts, chunks, chunk_size, (dataset,) if dataset else ())


def _dat_bytes(im: Imatrix) -> bytes:
    chunk = im.chunk_size or 512
    parts = [struct.pack("<i", len(im.values))]
    for name in im.names:
        raw = name.encode()
        ncall = max(1, int(-(-int(im.counts[name].max()) // chunk)))  # ceil, like llama-imatrix
        v = im.values[name].astype("<f4") * np.float32(ncall)
        parts += [struct.pack("<i", len(raw)), raw, struct.pack("<ii", ncall, v.size), v.tobytes()]
    dataset = im.dataset.encode()
    parts += [struct.pack("<ii", im.chunks, len(dataset)), dataset]
    return b"".join(parts)


def _gguf_module() -> Any:
    from edgekit.compress.hf import require

    require("gguf", extra="pip install 'edgekit[convert]'")
    import gguf

    return gguf


def _write_gguf(im: Imatrix, path: Path) -> None:
    gguf = _gguf_module()
    writer = gguf.GGUFWriter(str(path), arch="imatrix")
    # llama-imatrix's files carry no architecture; GGUFWriter always adds one, which readers ignore.
    writer.add_type("imatrix")
    writer.add_array("imatrix.datasets", list(im.datasets))
    writer.add_uint32("imatrix.chunk_count", im.chunks)
    writer.add_uint32("imatrix.chunk_size", im.chunk_size)
    for name in im.names:
        mats = im.counts[name].size
        sums = im.values[name].astype(np.float64) * np.repeat(im.counts[name], im.values[name].size // mats)
        writer.add_tensor(f"{name}.in_sum2", sums.astype(np.float32).reshape(mats, -1))
        writer.add_tensor(f"{name}.counts", im.counts[name].astype(np.float32).reshape(mats, 1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _read_gguf(path: Path) -> Imatrix:
    gguf = _gguf_module()
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, IndexError, struct.error, OSError) as e:
        raise _corrupt(path, str(e).splitlines()[0][:120] if str(e) else type(e).__name__) from None
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        base, _, kind = t.name.rpartition(".")
        if kind not in ("in_sum2", "counts"):
            continue
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise _corrupt(path, f"{t.name} is not F32")
        arr = np.array(t.data, dtype=np.float32).reshape(-1)
        (sums if kind == "in_sum2" else counts)[base] = arr
    if not sums:
        raise _corrupt(path, "no NAME.in_sum2 tensors")
    values: dict[str, np.ndarray] = {}
    for name, s in sums.items():
        c = counts.get(name)
        if c is None or c.size == 0 or s.size % c.size:
            raise _corrupt(path, f"{name}: counts missing or do not divide the sums")
        # a matrix that saw no rows gets 1 (what llama.cpp's loader does for partial MoE data)
        per = np.repeat(c, s.size // c.size)
        values[name] = np.where(per > 0, s / np.maximum(per, 1), 1.0).astype(np.float32)
    _check_finite(path, values)
    return Imatrix(
        values,
        {n: counts[n].astype(np.float32) for n in values},
        int(_field(reader, "imatrix.chunk_count", 0)),
        int(_field(reader, "imatrix.chunk_size", 0)),
        tuple(_strings(reader, "imatrix.datasets")),
    )


def _field(reader: Any, key: str, default: int) -> Any:
    f = reader.get_field(key)
    if f is None:
        return default
    return f.parts[f.data[0]][0]


def _strings(reader: Any, key: str) -> Iterable[str]:
    f = reader.get_field(key)
    if f is None:
        return []
    return [bytes(f.parts[i]).decode("utf-8", errors="replace") for i in f.data]


def _check_finite(path: Path, values: Mapping[str, np.ndarray]) -> None:
    for name, v in values.items():
        if not np.all(np.isfinite(v)):
            raise _corrupt(path, f"{name} has non-finite values")
