"""Generic post-export precision conversions for ONNX graphs (any component).

- `convert_fp16`: float32 -> float16 weights and activations, with chosen op types kept in
  float32 (Cast nodes around them) and float32 graph I/O, via onnxruntime's converter.
- `quantize_int8_dynamic`: int8 weights with dynamic (per-call) activation quantization for
  the chosen op types, via `onnxruntime.quantization.quantize_dynamic`.

Both leave `src` untouched. Graphs whose weights exceed protobuf's 2 GB limit (Qwen2.5-VL's
fp32 vision tower is ~2.7 GB) are read from and written to external data
(`<name>.onnx.data` next to the graph); `external_data=None` decides by size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

#: Above this many bytes of weights a graph is saved with external data (protobuf caps at 2 GiB).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def onnx_size(path: str | Path) -> int:
    """Bytes of an ONNX graph including the external data files it references."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    model = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return path.stat().st_size + sum((path.parent / loc).stat().st_size for loc in locations)


def save_onnx(model, dst: str | Path, external_data: bool | None = None) -> Path:
    """Save a ModelProto to `dst`, with weights in `dst.name + '.data'` when large (or asked)."""
    import onnx

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if external_data is None:
        external_data = model.ByteSize() > EXTERNAL_DATA_THRESHOLD
    data = dst.with_name(dst.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    if external_data:
        onnx.save(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name)
    else:
        onnx.save(model, str(dst))
    return dst


def convert_fp16(
    src: str | Path,
    dst: str | Path,
    keep_fp32_ops: Sequence[str] = ("Softmax",),
    keep_io_types: bool = True,
    external_data: bool | None = None,
) -> Path:
    """Write a float16 copy of `src` to `dst`; returns `dst`.

    keep_fp32_ops: op types computed in float32 (added to onnxruntime's default block list of
    ops lacking fp16 kernels). keep_io_types: float graph inputs/outputs stay float32.
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"ONNX file not found: {src}")
    model = onnx.load(str(src))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    # shape inference of >2 GB protos fails in onnx; the converter then relies on existing value_info
    big = model.ByteSize() > EXTERNAL_DATA_THRESHOLD
    half = convert_float_to_float16(
        model, keep_io_types=keep_io_types, op_block_list=block, disable_shape_infer=big
    )
    return save_onnx(half, dst, external_data)


def quantize_int8_dynamic(
    src: str | Path,
    dst: str | Path,
    op_types: Sequence[str] = ("MatMul",),
    per_channel: bool = False,
    external_data: bool | None = None,
) -> Path:
    """Write a dynamic-int8 copy of `src` to `dst` (weights int8, activations quantized per call).

    op_types: node types to quantize (MatMul covers Linear layers after export; Gather would
    quantize embedding tables). per_channel: per-output-channel weight scales.
    external_data: write `dst` with external weights (None: when the int8 result is large).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    size = onnx_size(src)
    big_src = size > EXTERNAL_DATA_THRESHOLD
    if external_data is None:
        external_data = size // 4 > EXTERNAL_DATA_THRESHOLD  # int8 weights are a quarter of fp32
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.with_name(dst.name + ".data").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="quant-", dir=dst.parent) as tmp:
        prepped = Path(tmp) / "prepped.onnx"
        # symbolic shape inference + constant folding give the quantizer static weight shapes
        quant_pre_process(
            str(src),
            str(prepped),
            save_as_external_data=big_src,
            all_tensors_to_one_file=True,
            external_data_location="prepped.onnx.data",
        )
        quantize_dynamic(
            str(prepped),
            str(dst),
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            use_external_data_format=external_data,
        )
    return dst
