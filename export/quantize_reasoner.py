"""Precision conversions for the reasoner's text graphs (`embed.onnx`, `decoder.onnx`).

- int4: weight-only blockwise 4-bit (`MatMulNBits` for every constant-weight MatMul, lm_head
  included; `GatherBlockQuantized` for the embedding table) through onnxruntime's
  `MatMulNBitsQuantizer`. `accuracy_level=4` lets the CPU kernel quantize activations to int8
  per block and use integer dot products (the fast path on x86/ARM); 0 keeps float compute.
- int8: `quantize_dynamic` (int8 weights, per-call uint8 activation quantization) for constant-
  weight MatMuls only (attention's activation×activation MatMuls stay float); the embedding
  table becomes int8 with a DequantizeLinear after the Gather.
- fp16: float16 weights, activations and KV cache; Softmax and the RMSNorm statistics stay
  float32, and `logits` stays float32 for the sampler.

Every function reads `src` (external data next to it is loaded) and writes `dst`, with
external data (`dst.name + ".data"`) when the result would pass protobuf's 2 GiB limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "int4")
#: Kept in float32 in fp16 graphs: softmax and the RMSNorm chain (squares overflow fp16);
#: the decoder's only float Div is RMSNorm's x / sqrt(mean(x²) + eps).
FP16_KEEP_FP32_OPS: tuple[str, ...] = ("Softmax", "Pow", "ReduceMean", "Sqrt", "Div")
_EXTERNAL_LIMIT = int(1.8 * 2**30)


def _load(src: str | Path):
    import onnx

    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"ONNX file not found: {src}")
    return onnx.load(str(src))


def save_onnx(model, dst: str | Path) -> Path:
    """Save `model`; tensors go to `dst.name + '.data'` when the file would exceed ~1.8 GiB."""
    import onnx

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    data = dst.with_name(dst.name + ".data")
    data.unlink(missing_ok=True)
    if _byte_size(model) > _EXTERNAL_LIMIT:
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


def _byte_size(model) -> int:
    try:
        return model.ByteSize()
    except ValueError:  # protobuf refuses to size > 2 GiB messages
        return 2**31


def check_block_size(block_size: int) -> None:
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16 (MatMulNBits), got {block_size}")


def quantize_int4(
    src: str | Path,
    dst: str | Path,
    *,
    block_size: int = 32,
    accuracy_level: int = 4,
    symmetric: bool = False,
    op_types: Sequence[str] = ("MatMul", "Gather"),
) -> Path:
    """Weight-only int4: MatMul -> MatMulNBits (blocks along K), Gather -> GatherBlockQuantized
    (blocks along the hidden axis). Non-constant MatMuls (attention) are left alone."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    check_block_size(block_size)
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise ValueError(f"accuracy_level must be 0..4 (MatMulNBits), got {accuracy_level}")
    model = _load(src)
    quant_logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quant_logger.level
    quant_logger.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        # the quantizer divides by a zero scale for all-equal blocks, then masks the result
        with np.errstate(divide="ignore", invalid="ignore"):
            quantizer = MatMulNBitsQuantizer(
                model,
                bits=4,
                block_size=block_size,
                is_symmetric=symmetric,
                accuracy_level=accuracy_level or None,
                op_types_to_quantize=tuple(op_types),
                quant_axes=(("MatMul", 0), ("Gather", 1)),
            )
            quantizer.process()
    finally:
        quant_logger.setLevel(level)
    return save_onnx(quantizer.model.model, dst)


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    *,
    op_types: Sequence[str] = ("MatMul", "Gather"),
    per_channel: bool = True,
) -> Path:
    """Dynamic int8 (`quantize_dynamic`): constant-weight MatMuls and embedding Gathers."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"ONNX file not found: {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns to run pre-processing; MatMul/Gather need none
    try:
        with tempfile.TemporaryDirectory(prefix="q8-", dir=dst.parent) as tmp:
            out = Path(tmp) / "q8.onnx"
            quantize_dynamic(
                str(src),
                str(out),
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                use_external_data_format=True,
                extra_options={"MatMulConstBOnly": True},
            )
            model = onnx.load(str(out))
    finally:
        root.setLevel(level)
    return save_onnx(model, dst)


def convert_fp16(
    src: str | Path,
    dst: str | Path,
    *,
    keep_fp32_ops: Sequence[str] = FP16_KEEP_FP32_OPS,
    keep_fp32_io: Sequence[str] = ("logits",),
) -> Path:
    """float16 weights/activations/KV I/O; `keep_fp32_ops` compute in float32 and the graph
    inputs/outputs named in `keep_fp32_io` stay float32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = _load(src)
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    names = {v.name for v in (*model.graph.input, *model.graph.output)}
    keep = [n for n in keep_fp32_io if n in names]
    half = convert_float_to_float16(
        model,
        keep_io_types=keep or False,
        op_block_list=block,
        disable_shape_infer=_byte_size(model) > _EXTERNAL_LIMIT,
    )
    return save_onnx(half, dst)


def convert_precision(
    src: str | Path, dst: str | Path, precision: str, *, block_size: int = 32, accuracy_level: int = 4
) -> Path:
    """Write `src` at `precision` (fp32 = plain copy) to `dst`."""
    if precision == "fp32":
        return save_onnx(_load(src), dst)
    if precision == "fp16":
        return convert_fp16(src, dst)
    if precision == "int8":
        return quantize_int8(src, dst)
    if precision == "int4":
        return quantize_int4(src, dst, block_size=block_size, accuracy_level=accuracy_level)
    raise ValueError(f"precision {precision!r} not in {PRECISIONS}")


def file_bytes(path: str | Path) -> int:
    """Size of an ONNX file plus its external data file, if any."""
    path = Path(path)
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)
