"""Reading, writing and sizing ONNX graphs of any size, for every exporter and converter.

Protobuf refuses messages over 2 GiB (Qwen2.5-VL's fp32 vision tower is ~2.7 GB), so a graph
whose weights pass `EXTERNAL_DATA_THRESHOLD` is written with its tensors in one external file,
`<name>.onnx.data`, next to it. One threshold and one layout for every graph: the runtime and
TensorRT find the data by the name the graph records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Above this many bytes a graph is saved with external data (protobuf caps a message at 2 GiB;
#: the margin covers the graph structure around the weights).
EXTERNAL_DATA_THRESHOLD = int(1.8 * 2**30)


def data_path(path: str | Path) -> Path:
    """The external-data file of graph `path`: `<name>.onnx.data` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def load_onnx(path: str | Path, *, load_external_data: bool = True) -> Any:
    """The ModelProto at `path` (external data next to it is read unless told not to)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    return onnx.load(str(path), load_external_data=load_external_data)


def proto_bytes(model: Any) -> int:
    """Serialized size of a ModelProto; 2 GiB when protobuf refuses to size it (it is over)."""
    try:
        return model.ByteSize()
    except ValueError:
        return 2**31


def needs_external_data(nbytes: int) -> bool:
    """Whether a graph with `nbytes` of weights must keep them in an external data file."""
    return nbytes > EXTERNAL_DATA_THRESHOLD


def save_onnx(model: Any, dst: str | Path, external_data: bool | None = None) -> Path:
    """Save a ModelProto to `dst`; tensors go to `<dst>.data` when `external_data` (None: when
    the proto passes the threshold). A stale data file is removed first (onnx appends to it)."""
    import onnx

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = data_path(dst)
    data.unlink(missing_ok=True)
    if external_data is None:
        external_data = needs_external_data(proto_bytes(model))
    if external_data:
        onnx.save_model(
            model,
            str(dst),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        data.chmod(0o644)  # onnx creates it owner-only; engine files are read by other users too
    else:
        onnx.save_model(model, str(dst))
    return dst


def save_program(program: Any, path: str | Path, *, external_data: bool) -> Path:
    """Save a `torch.onnx.export` program to `path` (weights in `<path>.data` when
    `external_data`; decide with `needs_external_data(weight bytes)`)."""
    path = Path(path)
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned no program for {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, data_path(path)):
        stale.unlink(missing_ok=True)
    program.save(str(path), external_data=external_data)
    return path


def onnx_bytes(path: str | Path) -> int:
    """Bytes of an ONNX graph plus the external data files it references."""
    model = load_onnx(path, load_external_data=False)
    path = Path(path)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return path.stat().st_size + sum((path.parent / loc).stat().st_size for loc in locations)
