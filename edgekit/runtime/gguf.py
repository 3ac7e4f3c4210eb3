"""A GGUF header reader that checks a file before llama.cpp sees it.

llama.cpp reports a truncated or foreign file as a bare "failed to load model"; this reader names the
problem (not GGUF, unsupported version, header cut short, tensor data cut short) and returns the
metadata scalars (architecture, context length, chat template), the shape of every array and the tensor
table, without loading any weights.

Any bytes at all give either a ``GGUFInfo`` or a one-line ``ModelFileError`` that names the file and the
field: every count and length is checked against the bytes left before anything is read or allocated,
arrays nest at most ``MAX_ARRAY_DEPTH`` deep, and the fields the reader itself uses (``general.alignment``,
tensor shapes, types and offsets) are checked for type and range.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import struct
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

from edgekit.errors import ModelFileError
from edgekit.files import atomic_replace, file_stamp

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_ARRAY_DEPTH = 8
"""Arrays of arrays: the format allows them, llama.cpp reads none, and a deep chain is only a way to
exhaust the stack."""
MAX_DIMS = 8
KEEP_ITEMS = 1024
"""Numeric arrays up to this long keep their values (per-layer head counts and the like)."""
REBUILD_HINT = "The file's header is corrupt; re-download it, or rebuild it from its source."
TRUNCATED_HINT = "The download or copy was cut short; fetch the file again."

# GGUF metadata value types -> struct format (strings and arrays handled separately)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
INTEGER_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
TYPE_NAMES = {
    0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32", 7: "bool",
    8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64",
}  # fmt: skip
# the fewest bytes one item of each type takes (a string is at least its length, an array its header)
_MIN_SIZE = {t: struct.calcsize(f) for t, f in _SCALARS.items()} | {STRING: 8, ARRAY: 12}
_MIN_KV = 8 + 4 + 1  # key length, value type, the smallest value
_MIN_TENSOR = 8 + 4 + 4 + 8  # name length, n_dims, type, offset


@cache
def ggml_blocks() -> dict[int, tuple[int, int]]:
    """ggml tensor type -> (elements per block, bytes per block), asked of the ggml library that will load
    the file (llama-cpp-python's), so a type it knows is never refused and one it lacks (or removed) never
    reaches it. Read on first use."""
    import ctypes

    import llama_cpp
    from llama_cpp._ggml import libggml

    libggml.ggml_blck_size.restype, libggml.ggml_blck_size.argtypes = ctypes.c_int64, [ctypes.c_int]
    libggml.ggml_type_size.restype, libggml.ggml_type_size.argtypes = ctypes.c_size_t, [ctypes.c_int]
    table = {}
    for t in range(int(llama_cpp.GGML_TYPE_COUNT)):
        elements, size = int(libggml.ggml_blck_size(t)), int(libggml.ggml_type_size(t))
        if elements > 0 and size > 0:
            table[t] = (elements, size)
    return table


def shown(text: str, width: int = 80) -> str:
    """A key or name from the file, quoted and escaped so that it stays on one line."""
    return repr(text if len(text) <= width else text[:width] + "...")


def type_name(vtype: int) -> str:
    return TYPE_NAMES.get(vtype, f"type {vtype}")


def a_type(vtype: int) -> str:
    """'a uint32', 'an int8', 'an array': a value type for a message."""
    name = type_name(vtype)
    return ("an " if name[0] in "ai" else "a ") + name  # an int8, an array; a uint32, a string


@dataclass(frozen=True)
class GGUFArray:
    """An array field: its item type, its length and, for numeric arrays of at most ``KEEP_ITEMS`` items,
    its values (``None`` otherwise: strings, nested arrays and long arrays are skipped, not kept)."""

    item_type: int
    count: int
    values: tuple[Any, ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    """Bytes from the start of the data section."""

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self) -> int | None:
        """Bytes of data; None when the type is unknown to this reader."""
        block = ggml_blocks().get(self.ggml_type)
        return None if block is None else self.n_elements // block[0] * block[1]


@dataclass(frozen=True)
class GGUFInfo:
    version: int
    n_tensors: int
    metadata: dict[str, Any] = field(repr=False)
    """Scalar and string values by key (arrays are in ``arrays``)."""
    data_end: int | None
    """Byte offset where tensor data must end; None when a tensor type is unknown to this reader."""
    types: dict[str, int] = field(default_factory=dict, repr=False)
    """The GGUF value type of every key, arrays included."""
    arrays: dict[str, GGUFArray] = field(default_factory=dict, repr=False)
    tensors: tuple[TensorInfo, ...] = field(default=(), repr=False)

    @property
    def architecture(self) -> str:
        v = self.metadata.get("general.architecture")
        return v if isinstance(v, str) else "unknown"

    @property
    def context_length(self) -> int | None:
        v = self.metadata.get(f"{self.architecture}.context_length")
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    @property
    def chat_template(self) -> str | None:
        v = self.metadata.get("tokenizer.chat_template")
        return v if isinstance(v, str) else None


_U64 = struct.Struct("<Q")


class HeaderReader:
    """Reads a GGUF header's fields from ``f`` (``size`` bytes long) and names ``path`` and the field being
    read (``where``) in every error: a count or length past the end of the file is a truncated or corrupt
    header, never a huge read or allocation."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size
        self.where = "the file header"

    def left(self) -> int:
        return self.size - self.f.tell()

    def corrupt(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: corrupt GGUF header ({what}, in {self.where})", REBUILD_HINT)

    def cut_short(self) -> ModelFileError:
        return ModelFileError(
            f"{self.path}: GGUF header is cut short in {self.where} (truncated file)", TRUNCATED_HINT
        )

    def need(self, n: int, what: str) -> None:
        """Raise unless ``n`` more bytes (what ``what`` must take at least) are left in the file."""
        if n > self.left():
            raise ModelFileError(
                f"{self.path}: corrupt GGUF header ({what} cannot fit in the {self.left()} bytes left, "
                f"in {self.where}; truncated or corrupt file)",
                REBUILD_HINT,
            )

    def take(self, n: int) -> bytes:
        if n > self.left():  # never ask read() for more than is left (a corrupt count)
            raise self.cut_short()
        b = self.f.read(n)
        if len(b) != n:
            raise self.cut_short()
        return b

    def skip(self, n: int) -> None:
        if n > self.left():
            raise self.cut_short()
        self.f.seek(n, 1)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def raw_string(self) -> bytes:
        return self.take(self.unpack("Q"))

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0) -> Any:
        """A scalar, a string, or a ``GGUFArray`` for an array."""
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            return self.array(depth + 1)
        raise self.corrupt(f"unknown value type {vtype}")

    def array(self, depth: int) -> GGUFArray:
        if depth > MAX_ARRAY_DEPTH:
            raise self.corrupt(f"arrays nested more than {MAX_ARRAY_DEPTH} deep")
        item, count = self.unpack("I"), self.unpack("Q")
        if item not in _MIN_SIZE:
            raise self.corrupt(f"array of unknown item type {item}")
        self.need(count * _MIN_SIZE[item], f"an array of {count} {type_name(item)} items")
        if item in _SCALARS:
            fmt = _SCALARS[item]
            if count > KEEP_ITEMS:
                self.skip(struct.calcsize(fmt) * count)
                return GGUFArray(item, count)
            return GGUFArray(item, count, struct.unpack(f"<{count}{fmt}", self.take(_MIN_SIZE[item] * count)))
        if item == STRING:
            self._skip_strings(count)
        else:
            for _ in range(count):
                self.array(depth + 1)
        return GGUFArray(item, count)

    def _skip_strings(self, count: int) -> None:
        """Step over ``count`` length-prefixed strings (a vocabulary: 10^5 of them) without reading them
        one call at a time: the lengths are walked in a memory map of the file."""
        pos, size, length = self.f.tell(), self.size, _U64.unpack_from
        with mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:  # a length past the end makes the next read fail, or the check after the loop
                for _ in range(count):
                    pos += 8 + length(mm, pos)[0]
            except (struct.error, OverflowError):  # OverflowError: an offset beyond 2**63
                raise self.cut_short() from None
        if pos > size:
            raise self.cut_short()
        self.f.seek(pos)


def read_gguf_cached(path: Path, cache_dir: Path) -> GGUFInfo:
    """``read_gguf``, remembered in ``cache_dir/headers/`` until the file's size, mtime or ctime changes:
    a header read once (and checked) is not walked again on every load (a 49k-token vocabulary is most of
    the 20 ms the read takes)."""
    memo = cache_dir / "headers" / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]}.json"
    try:
        stamp = file_stamp(path)
    except OSError:
        return read_gguf(path)  # the read names the problem
    try:
        rec = json.loads(memo.read_text(encoding="utf-8"))
        if rec["stamp"] == stamp:
            return _info_from(rec["info"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    info = read_gguf(path)
    with contextlib.suppress(OSError):  # a read-only cache: the next load reads the header again
        atomic_replace(memo, json.dumps({"stamp": stamp, "info": asdict(info)}).encode())
    return info


def _info_from(d: dict[str, Any]) -> GGUFInfo:
    arrays = {k: GGUFArray(a["item_type"], a["count"], _tuple(a["values"])) for k, a in d["arrays"].items()}
    tensors = tuple(
        TensorInfo(t["name"], tuple(t["dims"]), t["ggml_type"], t["offset"]) for t in d["tensors"]
    )
    return GGUFInfo(d["version"], d["n_tensors"], d["metadata"], d["data_end"], d["types"], arrays, tensors)


def _tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def read_gguf(path: Path) -> GGUFInfo:
    """Parse the header and check that the file is long enough for its tensors."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as e:
        raise ModelFileError(f"{path}: cannot open ({e.strerror})", "Check the path.") from None
    with f:
        r = HeaderReader(f, path, size)
        if f.read(4) != MAGIC:
            raise ModelFileError(
                f"{path}: not a GGUF file (bad magic)",
                "Point at a .gguf model, or convert the model with 'edgekit quantize'.",
            )
        version = r.unpack("I")
        if version not in (2, 3):
            raise ModelFileError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = r.unpack("Q"), r.unpack("Q")
        r.need(n_kv * _MIN_KV + n_tensors * _MIN_TENSOR, f"{n_tensors} tensors and {n_kv} keys")
        meta, types, arrays = _read_kvs(r, n_kv)
        align = _alignment(path, meta, types)
        tensors = tuple(_read_tensor(r, i) for i in range(n_tensors))
        r.where = "the tensor table"
        data_start = -(-f.tell() // align) * align
    return GGUFInfo(
        version, n_tensors, meta, _data_end(r, tensors, data_start, align), types, arrays, tensors
    )


def _read_kvs(r: HeaderReader, n_kv: int) -> tuple[dict[str, Any], dict[str, int], dict[str, GGUFArray]]:
    meta: dict[str, Any] = {}
    types: dict[str, int] = {}
    arrays: dict[str, GGUFArray] = {}
    for i in range(n_kv):
        r.where = f"key #{i}"
        key = r.string()
        r.where = f"key {shown(key)}"
        if not key:
            raise r.corrupt("an empty key")
        if key in types:
            raise r.corrupt("the key appears twice")
        vtype = r.unpack("I")
        val = r.value(vtype)
        types[key] = vtype
        if isinstance(val, GGUFArray):
            arrays[key] = val
        else:
            meta[key] = val
    return meta, types, arrays


def _alignment(path: Path, meta: dict[str, Any], types: dict[str, int]) -> int:
    if "general.alignment" not in types:
        return DEFAULT_ALIGNMENT
    vtype = types["general.alignment"]
    value: Any = meta.get("general.alignment")  # None when it is an array
    if vtype != 4 or value <= 0 or value & (value - 1):
        got = a_type(vtype) if vtype != 4 else f"{value}"
        raise ModelFileError(
            f"{path}: corrupt GGUF header (general.alignment is {got}; it must be a uint32 power of two)",
            REBUILD_HINT,
        )
    return int(value)


def _read_tensor(r: HeaderReader, i: int) -> TensorInfo:
    r.where = f"tensor #{i}"
    name = r.string()
    r.where = f"tensor {shown(name)}"
    n_dims = r.unpack("I")
    if n_dims > MAX_DIMS:
        raise r.corrupt(f"{n_dims} dimensions, more than {MAX_DIMS}")
    dims = tuple(r.unpack("Q") for _ in range(n_dims))
    ttype, offset = r.unpack("I"), r.unpack("Q")
    t = TensorInfo(name, dims, ttype, offset)
    if t.n_elements >= 1 << 63:
        raise r.corrupt(f"shape {list(dims)} has more elements than a 64-bit count holds")
    block = ggml_blocks().get(ttype)
    if block is not None and dims and dims[0] % block[0]:
        raise r.corrupt(f"the first dimension {dims[0]} is not a multiple of the block size {block[0]}")
    return t


def _data_end(r: HeaderReader, tensors: tuple[TensorInfo, ...], data_start: int, align: int) -> int | None:
    end: int | None = data_start if tensors else 0
    for t in tensors:
        r.where = f"tensor {shown(t.name)}"
        if t.offset % align:
            raise r.corrupt(f"data offset {t.offset} is not a multiple of the alignment {align}")
        nbytes = t.nbytes
        stop = data_start + t.offset + (nbytes or 0)
        if stop > r.size:
            raise ModelFileError(
                f"{r.path}: truncated GGUF ({r.size} bytes, tensor {shown(t.name)} needs {stop})",
                TRUNCATED_HINT,
            )
        if nbytes is None:
            end = None
        elif end is not None:
            end = max(end, stop)
    return end
