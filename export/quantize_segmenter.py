"""The segmenter's precision policy on top of the generic converters in `export/quantize.py`.

- fp16: weights and activations in fp16, graph I/O fp32 (the runtime feeds the same arrays).
  LayerNormalization and Softmax stay fp32 (their statistics and sums lose the mask logits'
  precision in fp16), and so does the prompt's random-Fourier position encoding (sin/cos of
  2π·x·G: an fp16 argument of ~10 is off by up to 4e-3 rad).
- int8: dynamic quantization of MatMul/Gemm weights (int8, per tensor; activations uint8
  per call). Convolutions stay fp32: on this 2-core x86 CPU, quantizing them too made the
  hiera-t encoder slower (5.6 s vs 4.9 s; fp32 7.8 s) and less faithful (max relative
  feature error 0.060 vs 0.052). `export_segmenter` keeps the decoder fp32 for int8: it
  is ~4M weights, int8 saves it 0-30% of its time and costs ~2 points of mask IoU
  (bench/segmenter.py prints both variants).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .quantize import convert_fp16, quantize_int8_dynamic

#: Ops kept in fp32 by the fp16 conversion (on top of onnxruntime's default block list).
FP16_KEEP_FP32 = ("LayerNormalization", "Softmax", "Sin", "Cos")
#: Ops whose weights the int8 conversion quantizes.
INT8_OPS = ("MatMul", "Gemm")


def to_fp16(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the fp16 variant of the fp32 graph `src` to `dst`; returns its manifest details."""
    convert_fp16(src, dst, keep_fp32_ops=FP16_KEEP_FP32, keep_io_types=True)
    return {"method": "onnxruntime.transformers.float16", "kept_fp32_ops": list(FP16_KEEP_FP32), "io": "fp32"}


def to_int8(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the dynamic-int8 variant of the fp32 graph `src` to `dst`; returns its manifest details."""
    quantize_int8_dynamic(src, dst, op_types=INT8_OPS, per_channel=False)
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "ops": list(INT8_OPS),
        "weights": "int8 per-tensor",
        "activations": "uint8, quantized per call",
    }
