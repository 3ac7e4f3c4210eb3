"""A GGUF header reader that checks a file before llama.cpp sees it.

llama.cpp reports a truncated or foreign file as a bare "failed to load model"; this reader names the
problem (not GGUF, unsupported version, header cut short, tensor data cut short) and returns the
metadata scalars (architecture, context length, chat template) without loading any weights.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from edgekit.errors import ModelFileError

MAGIC = b"GGUF"

# GGUF metadata value types -> struct format (strings and arrays handled separately)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types -> (elements per block, bytes per block), from ggml.h / gguf constants
GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}


@dataclass(frozen=True)
class GGUFInfo:
    version: int
    n_tensors: int
    metadata: dict[str, Any] = field(repr=False)
    data_end: int | None
    """Byte offset where tensor data must end; None when a tensor type is unknown to this reader."""

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def context_length(self) -> int | None:
        v = self.metadata.get(f"{self.architecture}.context_length")
        return int(v) if v is not None else None

    @property
    def chat_template(self) -> str | None:
        v = self.metadata.get("tokenizer.chat_template")
        return v if isinstance(v, str) else None


class HeaderReader:
    """Reads a GGUF header's fields from ``f`` (``size`` bytes long) and names ``path`` in every error: a
    count or length past the end of the file is a truncated or corrupt header, never a huge read."""

    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size

    def take(self, n: int) -> bytes:
        if n > self.size - self.f.tell():  # never ask read() for more than is left (a corrupt count)
            raise ModelFileError(f"{self.path}: GGUF header is cut short (truncated file)")
        b = self.f.read(n)
        if len(b) != n:
            raise ModelFileError(f"{self.path}: GGUF header is cut short (truncated file)")
        return b

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        if n > 1 << 30:
            raise ModelFileError(f"{self.path}: corrupt GGUF header (string of {n} bytes)")
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("I"), self.unpack("Q")
            if count > 1 << 30:
                raise ModelFileError(f"{self.path}: corrupt GGUF header (array of {count} items)")
            if etype in _SCALARS:  # skip fixed-size arrays in one seek-like read
                self.take(struct.calcsize(_SCALARS[etype]) * count)
                return None
            items = [self.value(etype, False) for _ in range(count)]
            return items if keep else None
        raise ModelFileError(f"{self.path}: corrupt GGUF header (unknown value type {vtype})")


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
        if n_tensors > 1 << 24 or n_kv > 1 << 24:
            raise ModelFileError(f"{path}: corrupt GGUF header ({n_tensors} tensors, {n_kv} keys)")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            vtype = r.unpack("I")
            val = r.value(vtype, keep=False)
            if val is not None:
                meta[key] = val
        end: int | None = 0
        tensors = []
        for _ in range(n_tensors):
            r.string()
            n_dims = r.unpack("I")
            if n_dims > 8:
                raise ModelFileError(f"{path}: corrupt GGUF header (tensor with {n_dims} dims)")
            dims = [r.unpack("Q") for _ in range(n_dims)]
            ttype, offset = r.unpack("I"), r.unpack("Q")
            tensors.append((dims, ttype, offset))
        align = int(meta.get("general.alignment", 32))
        data_start = -(-f.tell() // align) * align
        for dims, ttype, offset in tensors:
            if ttype not in GGML_BLOCKS:
                end = None
                break
            n = 1
            for d in dims:
                n *= d
            blk, nbytes = GGML_BLOCKS[ttype]
            assert end is not None
            end = max(end, data_start + offset + (n // blk) * nbytes)
    if end is not None and size < end:
        raise ModelFileError(
            f"{path}: truncated GGUF ({size} bytes, tensors need {end})",
            "The download or copy was cut short; fetch the file again.",
        )
    return GGUFInfo(version, n_tensors, meta, end)
