"""A minimal, deterministic writer of ONNX model files (protobuf wire format), numpy arrays in, bytes out.

Why not the ``onnx`` package: the run-time install has only numpy, onnxruntime and tokenizers, and a
pinned build must give the same bytes whatever protobuf or onnx version is around. The subset here is what
a feature-extraction graph needs: nodes with int, float, string and int-list attributes, initializers as
raw little-endian data, typed inputs and outputs with symbolic dimensions, and opset imports. Field
numbers are those of ``onnx/onnx.proto`` (IR version 8); fields are written in field-number order and
repeated scalars packed, as protobuf's own serializer does, so ``onnx.load`` and onnxruntime read it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

# onnx.TensorProto.DataType
DTYPES: dict[np.dtype, int] = {
    np.dtype(np.float32): 1,
    np.dtype(np.uint8): 2,
    np.dtype(np.int8): 3,
    np.dtype(np.int32): 6,
    np.dtype(np.int64): 7,
    np.dtype(np.float16): 10,
}
FLOAT, UINT8, INT8, INT32, INT64, FLOAT16 = 1, 2, 3, 6, 7, 10

Attr = int | float | str | Sequence[int]


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 fields: two's complement, ten bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field_no: int, wire: int) -> bytes:
    return _varint(field_no << 3 | wire)


def _int(field_no: int, n: int) -> bytes:
    return _key(field_no, 0) + _varint(n)


def _bytes(field_no: int, data: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(data)) + data


def _str(field_no: int, s: str) -> bytes:
    return _bytes(field_no, s.encode())


def _packed(field_no: int, values: Sequence[int]) -> bytes:
    return _bytes(field_no, b"".join(_varint(int(v)) for v in values)) if len(values) else b""


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims=1, data_type=2, name=8, raw_data=9 (little-endian, C order)."""
    a = np.ascontiguousarray(array)
    raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    return _packed(1, a.shape) + _int(2, DTYPES[a.dtype]) + _str(8, name) + _bytes(9, raw)


def _attribute(name: str, value: Attr) -> bytes:
    """AttributeProto: name=1, f=2, i=3, s=4, ints=8, type=20 (FLOAT=1, INT=2, STRING=3, INTS=7)."""
    if isinstance(value, (bool, int, np.integer)):
        return _str(1, name) + _int(3, int(value)) + _int(20, 2)
    if isinstance(value, (float, np.floating)):
        return _str(1, name) + _key(2, 5) + struct.pack("<f", float(value)) + _int(20, 1)
    if isinstance(value, str):
        return _str(1, name) + _bytes(4, value.encode()) + _int(20, 3)
    return _str(1, name) + _packed(8, [int(v) for v in value]) + _int(20, 7)


def _value_info(name: str, elem: int, shape: Sequence[int | str]) -> bytes:
    """ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: {elem_type=1, shape=2: {dim=1}}}}."""
    dims = b"".join(
        _bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape
    )  # Dimension: dim_value=1, dim_param=2
    tensor_type = _int(1, elem) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


@dataclass
class Graph:
    """Nodes in topological order, as a graph builder appends them; names are generated and stable."""

    name: str
    nodes: list[bytes] = field(default_factory=list)
    initializers: list[bytes] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)
    outputs: list[bytes] = field(default_factory=list)
    _count: int = 0

    def input(self, name: str, elem: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(_value_info(name, elem, shape))
        return name

    def output(self, name: str, elem: int, shape: Sequence[int | str]) -> None:
        self.outputs.append(_value_info(name, elem, shape))

    def init(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(tensor(name, array))
        return name

    def const(self, array: np.ndarray | float | int | Sequence[int]) -> str:
        a = np.asarray(array)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        elif a.dtype.kind == "i" and not isinstance(array, np.ndarray):
            a = a.astype(np.int64)  # Python ints: int64 on every platform
        self._count += 1
        return self.init(f"c{self._count}", a)

    def op(
        self, op_type: str, inputs: Sequence[str], *, domain: str = "", output: str = "", **attrs: Attr
    ) -> str:
        """Append a node with one output (named ``output``, else generated); return the output's name."""
        return self._node(op_type, inputs, 1, domain, output, attrs)[0]

    def op_n(
        self, op_type: str, inputs: Sequence[str], n: int, *, domain: str = "", **attrs: Attr
    ) -> list[str]:
        """Append a node with ``n`` outputs; return their names."""
        return self._node(op_type, inputs, n, domain, "", attrs)

    def _node(
        self, op_type: str, inputs: Sequence[str], n: int, domain: str, output: str, attrs: Mapping[str, Attr]
    ) -> list[str]:
        """NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7 ("" = optional input)."""
        self._count += 1
        base = f"{op_type}_{self._count}"
        names = [output] if output else [f"{base}:{i}" for i in range(n)]
        body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in names)
        body += _str(3, base) + _str(4, op_type)
        body += b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items()))
        if domain:
            body += _str(7, domain)
        self.nodes.append(body)
        return names

    def serialize(self) -> bytes:
        """GraphProto: node=1, name=2, initializer=5, input=11, output=12."""
        return (
            b"".join(_bytes(1, n) for n in self.nodes)
            + _str(2, self.name)
            + b"".join(_bytes(5, t) for t in self.initializers)
            + b"".join(_bytes(11, i) for i in self.inputs)
            + b"".join(_bytes(12, o) for o in self.outputs)
        )


def model(graph: Graph, opsets: Mapping[str, int], *, producer: str, ir_version: int = 8) -> bytes:
    """ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8 ({domain=1, version=2})."""
    body = _int(1, ir_version) + _str(2, producer) + _bytes(7, graph.serialize())
    for domain, version in sorted(opsets.items()):
        body += _bytes(8, (_str(1, domain) if domain else b"") + _int(2, version))
    return body
