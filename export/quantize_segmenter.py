"""Lower-precision variants of an exported fp32 ONNX graph: fp16 weights and int8 dynamic quantization.

- fp16: onnxruntime's own `float16.convert_float_to_float16` (no onnxconverter-common
  needed). Graph inputs and outputs stay fp32 (`keep_io_types`), so the runtime feeds the
  same arrays. LayerNormalization, Softmax and the position encoding's trigonometry stay
  fp32: LayerNorm statistics and softmax sums overflow or lose the mask logits' precision
  in fp16, and sin/cos of 2π·x·G for |x·G| ~ 10 loses ~1e-2 in half precision.
- int8: `onnxruntime.quantization.quantize_dynamic` of MatMul/Gemm weights (int8,
  per-tensor; activations quantized on the fly, uint8). Convolutions stay fp32: the Hiera
  patch embedding and FPN convolutions are a small share of the time, and ConvInteger is
  slow on most CPU builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Ops kept in fp32 by `convert_fp16` (on top of onnxruntime's default block list).
FP16_KEEP_FP32 = ("LayerNormalization", "Softmax", "Sin", "Cos", "ReduceMean", "Pow", "Sqrt", "Erf")
#: Ops whose weights `quantize_int8` quantizes.
INT8_OPS = ("MatMul", "Gemm")


def _size_of(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def _save_model(model: Any, path: Path, weight_bytes: int) -> None:
    import onnx

    from .segmenter import EXTERNAL_DATA_THRESHOLD

    path.parent.mkdir(parents=True, exist_ok=True)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    if weight_bytes > EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data.name)
    else:
        onnx.save_model(model, path)


def convert_fp16(src: str | Path, dst: str | Path, keep_fp32: tuple[str, ...] = FP16_KEEP_FP32) -> dict[str, Any]:
    """Write an fp16-weight copy of `src` to `dst`; returns what was done (for the manifest)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    src, dst = Path(src), Path(dst)
    model = onnx.load(src)  # loads external data too
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _save_model(half, dst, _size_of(src) // 2)
    return {"method": "onnxruntime.transformers.float16", "kept_fp32_ops": list(keep_fp32), "io": "fp32"}


def quantize_int8(src: str | Path, dst: str | Path, op_types: tuple[str, ...] = INT8_OPS) -> dict[str, Any]:
    """Write a dynamically int8-quantized copy of `src` to `dst`; returns what was done."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    from .segmenter import EXTERNAL_DATA_THRESHOLD

    for stale in (dst, dst.with_name(dst.name + ".data")):
        stale.unlink(missing_ok=True)
    quantize_dynamic(
        src,
        dst,
        op_types_to_quantize=list(op_types),
        weight_type=QuantType.QInt8,
        per_channel=False,
        use_external_data_format=_size_of(src) // 4 > EXTERNAL_DATA_THRESHOLD,
    )
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "ops": list(op_types),
        "weights": "int8 per-tensor",
        "activations": "uint8 dynamic",
    }
