"""Precision conversions of exported fp32 ONNX graphs, one implementation for every component.

A component states its choices in a `PrecisionPolicy` (op lists and settings, kept next to its
exporter with the measurements behind them); `convert` applies one:

- fp16: float16 weights and activations (onnxruntime's converter); the policy's op types are
  computed in float32 (Casts around them) and the graph I/O stays float32 (all of it, or the
  named inputs/outputs).
- int8: int8 weights with activations quantized per call (`quantize_dynamic`) for the policy's
  op types; MatMuls are quantized only where B is a constant weight (the dynamic default), so
  attention's activation x activation products stay float. `int8_prepare` runs onnxruntime's
  pre-processing first (symbolic shape inference + constant folding, which gives the quantizer
  static weight shapes where the exporter left them implicit).
- int4: weight-only blockwise 4-bit for the policy's op types (`MatMulNBits`,
  `GatherBlockQuantized`).

Every conversion reads `src` with the external data beside it and writes `dst` through
`onnx_io.save_onnx`, so one external-data rule covers every graph.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.export.onnx_io import load_onnx, needs_external_data, onnx_bytes, proto_bytes, save_onnx


@dataclass(frozen=True)
class PrecisionPolicy:
    """How one component converts its fp32 graphs (see the module docstring for each precision)."""

    fp16_keep_fp32_ops: tuple[str, ...] = field(
        metadata={"help": "op types computed in float32 in fp16 graphs (on top of onnxruntime's block list)"}
    )
    fp16_keep_fp32_nodes: tuple[str, ...] = field(
        default=(), metadata={"help": "node names computed in float32 in fp16 graphs (absent names are ignored)"}
    )
    fp16_keep_fp32_io: bool | tuple[str, ...] = field(
        default=True, metadata={"help": "True: all float graph I/O stays float32; a tuple: only these names"}
    )
    int8_ops: tuple[str, ...] = field(default=("MatMul",), metadata={"help": "op types whose weights become int8"})
    int8_per_channel: bool = field(default=False, metadata={"help": "per-output-channel int8 weight scales"})
    int8_prepare: bool = field(default=True, metadata={"help": "run onnxruntime's quantization pre-processing"})
    int4_ops: tuple[str, ...] = field(
        default=(), metadata={"help": "op types quantized to int4 blocks; empty: no int4 for this component"}
    )

    @property
    def precisions(self) -> tuple[str, ...]:
        return ("fp32", "fp16", "int8", "int4") if self.int4_ops else ("fp32", "fp16", "int8")

    def details(self, precision: str) -> dict[str, Any]:
        """What a conversion did, for the manifest."""
        if precision == "fp16":
            io = "fp32" if self.fp16_keep_fp32_io is True else list(self.fp16_keep_fp32_io or [])
            return {"method": "onnxruntime.transformers.float16", "kept_fp32_ops": list(self.fp16_keep_fp32_ops), "io": io}
        if precision == "int8":
            return {
                "method": "onnxruntime.quantization.quantize_dynamic",
                "ops": list(self.int8_ops),
                "weights": "int8 per-channel" if self.int8_per_channel else "int8 per-tensor",
                "activations": "uint8, quantized per call",
            }
        return {}


def check_block_size(block_size: int) -> None:
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16 (MatMulNBits), got {block_size}")


def convert(
    src: str | Path,
    dst: str | Path,
    precision: str,
    policy: PrecisionPolicy,
    *,
    block_size: int = 32,
    accuracy_level: int = 4,
    int4_symmetric: bool | Sequence[str] = False,
    external_data: bool | None = None,
) -> dict[str, Any]:
    """Write `src` (an fp32 graph) at `precision` to `dst` following `policy`; fp32 is a copy.

    Returns the manifest details of the conversion (`policy.details`). block_size,
    accuracy_level and int4_symmetric (`quantize_int4`'s `symmetric`) apply to int4;
    external_data forces (or forbids) `<dst>.data` (None: by size).
    """
    if precision not in policy.precisions:
        raise ValueError(f"precision {precision!r} not in {policy.precisions}")
    if precision == "fp32":
        save_onnx(load_onnx(src), dst, external_data)
    elif precision == "fp16":
        convert_fp16(
            src, dst, keep_fp32_ops=policy.fp16_keep_fp32_ops, keep_fp32_io=policy.fp16_keep_fp32_io,
            keep_fp32_nodes=policy.fp16_keep_fp32_nodes, external_data=external_data,
        )
    elif precision == "int8":
        quantize_int8(
            src, dst, op_types=policy.int8_ops, per_channel=policy.int8_per_channel, prepare=policy.int8_prepare,
            external_data=external_data,
        )
    else:
        quantize_int4(
            src, dst, op_types=policy.int4_ops, block_size=block_size, accuracy_level=accuracy_level,
            symmetric=int4_symmetric, external_data=external_data,
        )
    return policy.details(precision)


def convert_fp16(
    src: str | Path,
    dst: str | Path,
    *,
    keep_fp32_ops: Sequence[str],
    keep_fp32_io: bool | Sequence[str] = True,
    keep_fp32_nodes: Sequence[str] = (),
    external_data: bool | None = None,
) -> Path:
    """Write a float16 copy of `src` to `dst`; `keep_fp32_ops` (op types) and `keep_fp32_nodes`
    (node names) compute in float32, and the graph I/O stays float32 (`keep_fp32_io=True`), or
    only the named inputs/outputs do."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = load_onnx(src)
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    keep_io: bool | list[str] = keep_fp32_io
    if not isinstance(keep_fp32_io, bool):
        names = {v.name for v in (*model.graph.input, *model.graph.output)}
        keep_io = [n for n in keep_fp32_io if n in names] or False
    half = convert_float_to_float16(
        model,
        keep_io_types=keep_io,
        op_block_list=block,
        node_block_list=[n.name for n in model.graph.node if n.name in set(keep_fp32_nodes)] or None,
        # shape inference of >2 GB protos fails in onnx; the converter then uses the existing value_info
        disable_shape_infer=needs_external_data(proto_bytes(model)),
    )
    return save_onnx(half, dst, external_data)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # quantize_dynamic logs a warning to run pre-processing, which constant weights do not need
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    *,
    op_types: Sequence[str],
    per_channel: bool,
    prepare: bool,
    external_data: bool | None = None,
) -> Path:
    """Write a dynamic-int8 copy of `src` to `dst`: int8 weights for `op_types` (MatMul with a
    constant B, Gemm, Gather), activations quantized per call."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src), Path(dst)
    big = needs_external_data(onnx_bytes(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="q8-", dir=dst.parent) as tmp:
        source = src
        if prepare:
            source = Path(tmp) / "prepped.onnx"
            quant_pre_process(
                str(src),
                str(source),
                save_as_external_data=big,
                all_tensors_to_one_file=True,
                external_data_location=source.name + ".data",
            )
        out = Path(tmp) / "q8.onnx"
        with _quiet_root_logger():
            quantize_dynamic(
                str(source),
                str(out),
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                use_external_data_format=big,
                # onnx's shape inference cannot type the outputs of onnxruntime's contrib ops (the
                # fused decoder's SkipSimplifiedLayerNormalization); the sources are fp32 graphs
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        model = load_onnx(out)
    return save_onnx(model, dst, external_data)


def quantize_int4(
    src: str | Path,
    dst: str | Path,
    *,
    op_types: Sequence[str],
    block_size: int = 32,
    accuracy_level: int = 4,
    symmetric: bool | Sequence[str] = False,
    external_data: bool | None = None,
) -> Path:
    """Weight-only int4: MatMul -> MatMulNBits (blocks along K), Gather -> GatherBlockQuantized
    (blocks along the hidden axis); non-constant MatMuls (attention) are left alone.

    accuracy_level 4 lets the CPU kernel quantize activations to int8 per block and use integer
    dot products (the fast path on x86/ARM); 0 keeps float compute. symmetric: True quantizes
    every block symmetrically (int4 in [-8, 7], no zero points), False asymmetrically (uint4
    with a zero point per block); a sequence of node names quantizes those nodes symmetrically
    and the rest asymmetrically (absent names are ignored).
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    check_block_size(block_size)
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise ValueError(f"accuracy_level must be 0..4 (MatMulNBits), got {accuracy_level}")
    model = load_onnx(src)
    if isinstance(symmetric, bool):
        passes = [(symmetric, [])]
    else:  # the named nodes first (symmetric, every other node excluded); then the rest
        names = {n.name for n in model.graph.node}
        passes = [(True, sorted(names - set(symmetric))), (False, [])]
    quant_logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = quant_logger.level
    quant_logger.setLevel(logging.WARNING)  # it logs every node at INFO
    try:
        for is_symmetric, exclude in passes:
            # the quantizer divides by a zero scale for all-equal blocks, then masks the result
            with np.errstate(divide="ignore", invalid="ignore"):
                quantizer = MatMulNBitsQuantizer(
                    model,
                    bits=4,
                    block_size=block_size,
                    is_symmetric=is_symmetric,
                    accuracy_level=accuracy_level or None,
                    nodes_to_exclude=exclude,
                    op_types_to_quantize=tuple(op_types),
                    quant_axes=(("MatMul", 0), ("Gather", 1)),
                )
                quantizer.process()
            model = quantizer.model.model
    finally:
        quant_logger.setLevel(level)
    return save_onnx(model, dst, external_data)
