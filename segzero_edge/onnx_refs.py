"""The files an ONNX graph makes ONNX Runtime open: its external-data locations.

A tensor stored outside the graph names its file in `external_data["location"]`, relative to
the graph's folder; ONNX Runtime opens that file while it builds the session. Older
onnxruntime releases (before 1.24) follow `../` and absolute locations, and every release
honours the in-memory marker `*/_ORT_MEM_ADDR_/*`. So the engine loader reads every location
itself, before any session exists, and refuses those that are not files of the engine
directory (`segzero_edge.manifest`).

This is a minimal protobuf wire-format walk (no `onnx` package: the runtime does not depend
on it). It visits every place a TensorProto can sit in a model: graph initializers, sparse
initializers, node attributes (`t`, `tensors`, `sparse_tensor(s)`), subgraphs (`g`,
`graphs`: If/Loop/Scan bodies), model-local functions and training-info graphs. Field
numbers are those of onnx.proto (IR version 10).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Deepest nesting of subgraphs accepted (real graphs nest a few levels).
MAX_DEPTH = 64

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

# message -> {field number: message kind} for the length-delimited fields that can lead to a tensor
_MODEL = {7: "graph", 20: "training", 25: "function"}
_GRAPH = {1: "node", 5: "tensor", 15: "sparse"}
_NODE = {5: "attribute"}
_ATTRIBUTE = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"}
_SPARSE = {1: "tensor", 2: "tensor"}
_TRAINING = {1: "graph", 2: "graph"}
_FUNCTION = {7: "node", 11: "attribute"}
_SCHEMAS = {
    "model": _MODEL,
    "graph": _GRAPH,
    "node": _NODE,
    "attribute": _ATTRIBUTE,
    "sparse": _SPARSE,
    "training": _TRAINING,
    "function": _FUNCTION,
}
_TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 8, 13, 14
_DATA_LOCATION_EXTERNAL = 1


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX model (the text says where it broke)."""


@dataclass(frozen=True)
class ExternalRef:
    """One tensor's external data: `location` relative to the graph's folder, and the byte
    range (`offset`, `length`; length None = to the end of the file)."""

    tensor: str
    location: str | None
    offset: int
    length: int | None


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise OnnxFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int, end: int):
    """(field number, wire type, value start, value end or varint value) for one message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, value
        elif wire == _I64:
            pos += 8
            yield number, wire, pos - 8, pos
        elif wire == _I32:
            pos += 4
            yield number, wire, pos - 4, pos
        elif wire == _LEN:
            size, pos = _varint(buf, pos, end)
            if size > end - pos:
                raise OnnxFormatError(f"a field of {size} bytes overruns its message")
            yield number, wire, pos, pos + size
            pos += size
        else:  # groups are not used by onnx.proto
            raise OnnxFormatError(f"unsupported wire type {wire}")
    if pos != end:
        raise OnnxFormatError("a field overruns its message")


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OnnxFormatError(f"a string is not UTF-8: {exc}") from None


def _tensor(buf: memoryview, start: int, end: int, out: list[ExternalRef]) -> None:
    name, entries, external = "", [], False
    for number, wire, a, b in _fields(buf, start, end):
        if number == _TENSOR_NAME and wire == _LEN:
            name = _text(buf, a, b)
        elif number == _TENSOR_EXTERNAL and wire == _LEN:
            key = value = ""
            for n, w, c, d in _fields(buf, a, b):
                if w == _LEN and n == 1:
                    key = _text(buf, c, d)
                elif w == _LEN and n == 2:
                    value = _text(buf, c, d)
            entries.append((key, value))
        elif number == _TENSOR_LOCATION and wire == _VARINT:
            external = a == _DATA_LOCATION_EXTERNAL
    if not (external or entries):
        return
    info = dict(entries)
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise OnnxFormatError(f"tensor {name!r}: external offset/length are not integers: {info}") from None
    if offset < 0 or (length is not None and length < 0):
        raise OnnxFormatError(f"tensor {name!r}: negative external offset/length: {info}")
    out.append(ExternalRef(name, info.get("location"), offset, length))


def _walk(buf: memoryview, kind: str, start: int, end: int, depth: int, out: list[ExternalRef]) -> None:
    if depth > MAX_DEPTH:
        raise OnnxFormatError(f"subgraphs nest deeper than {MAX_DEPTH} levels")
    schema = _SCHEMAS[kind]
    for number, wire, a, b in _fields(buf, start, end):
        child = schema.get(number)
        if child is None or wire != _LEN:
            continue
        if child == "tensor":
            _tensor(buf, a, b, out)
        else:
            _walk(buf, child, a, b, depth + (child == "graph"), out)


@contextmanager
def _mapped(path: str | Path) -> Iterator[memoryview]:
    """The ONNX file at `path` as a read-only memory map (released on exit); an empty file
    is `OnnxFormatError`."""
    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            raise OnnxFormatError("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            buf = memoryview(mapped)
            try:
                yield buf
            finally:
                buf.release()


def external_refs(path: str | Path) -> list[ExternalRef]:
    """Every tensor with external data in the ONNX file at `path` (an empty list when all
    weights are inside the file). Raises `OnnxFormatError` when the file is not a model."""
    with _mapped(path) as buf:
        size = len(buf)
        out: list[ExternalRef] = []
        graphs = 0
        for number, wire, _a, _b in _fields(buf, 0, size):
            graphs += number == 7 and wire == _LEN
        if graphs == 0:
            raise OnnxFormatError("no graph (ModelProto field 7)")
        _walk(buf, "model", 0, size, 0, out)
        return out


# -- graph inputs and outputs (for `segzero-edge info`) --------------------------------------

#: TensorProto.DataType numbers -> names.
ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
              10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: name, element type and shape (ints, or symbolic names)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


def _value_info(buf: memoryview, start: int, end: int) -> ValueInfo:
    name, dtype, shape = "", "?", []
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == _LEN:
            name = _text(buf, a, b)
        elif number == 2 and wire == _LEN:  # TypeProto
            for n, w, c, d in _fields(buf, a, b):
                if n != 1 or w != _LEN:  # tensor_type only
                    continue
                for n2, w2, e, f in _fields(buf, c, d):
                    if n2 == 1 and w2 == _VARINT:
                        dtype = ONNX_TYPES.get(e, f"type{e}")
                    elif n2 == 2 and w2 == _LEN:  # TensorShapeProto
                        for n3, w3, g, h in _fields(buf, e, f):
                            if n3 != 1 or w3 != _LEN:
                                continue
                            dim: int | str = "?"
                            for n4, w4, i, j in _fields(buf, g, h):
                                if n4 == 1 and w4 == _VARINT:
                                    dim = i
                                elif n4 == 2 and w4 == _LEN:
                                    dim = _text(buf, i, j)
                            shape.append(dim)
    return ValueInfo(name, dtype, tuple(shape))


def graph_io(path: str | Path) -> tuple[list[ValueInfo], list[ValueInfo]]:
    """(inputs, outputs) of the main graph of the ONNX file at `path`, without onnx or
    onnxruntime (initializers listed as inputs by old exporters are left out)."""
    with _mapped(path) as buf:
        for number, wire, a, b in _fields(buf, 0, len(buf)):
            if number != 7 or wire != _LEN:
                continue
            inputs, outputs, initializers = [], [], set()
            for n, w, c, d in _fields(buf, a, b):
                if w != _LEN:
                    continue
                if n == 11:
                    inputs.append(_value_info(buf, c, d))
                elif n == 12:
                    outputs.append(_value_info(buf, c, d))
                elif n == 5:
                    for n2, w2, e, f in _fields(buf, c, d):
                        if n2 == _TENSOR_NAME and w2 == _LEN:
                            initializers.add(_text(buf, e, f))
            return [i for i in inputs if i.name not in initializers], outputs
        raise OnnxFormatError("no graph (ModelProto field 7)")
