"""TensorRT plans of an engine directory: which graph gets which optimisation profile.

`export.tensorrt` turns one ONNX graph into one plan and knows nothing of the components;
this module knows them (the segmenter's encoder and decoder today) and returns the manifest's
`trt` entry. Components without a plan builder here keep running on ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segzero_edge.export.tensorrt import build_plan, tensorrt_version
from segzero_edge.graphs import segmenter_io as io


def build_segmenter_plans(
    onnx_dir: str | Path,
    plan_dir: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    fp16: bool = True,
    max_points: int = io.MAX_POINTS,
    opt_points: int = 5,
    timing_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Build `segmenter_encoder.plan` and `segmenter_decoder.plan` in `plan_dir` from the
    graphs in `onnx_dir` and return the manifest's `trt.segmenter` entry (plan names relative
    to `plan_dir`).

    The graphs must be fp32 or fp16 (`meta["precision"]`): TensorRT has no kernels for
    onnxruntime's dynamic-int8 ops; with `fp16=True` it picks fp16 kernels itself. The decoder
    profile covers 1..max_points prompt points, tuned for `opt_points` (Seg-Zero: 2 points +
    2 box corners + 1 pad = 5).
    """
    if not 1 <= opt_points <= max_points <= io.MAX_POINTS:
        raise ValueError(
            f"need 1 <= opt_points <= max_points <= {io.MAX_POINTS}, got {opt_points}, {max_points}"
        )
    precision = (meta or {}).get("precision", {"encoder": "fp32", "decoder": "fp32"})
    if "int8" in precision.values():
        raise ValueError(
            f"TensorRT plans are built from fp32/fp16 segmenter graphs, these are {precision}: onnxruntime's "
            "dynamic int8 ops have no TensorRT kernels. Export the segmenter as fp16 (or fp32) with --tensorrt"
        )
    onnx_dir, plan_dir = Path(onnx_dir), Path(plan_dir)
    for name in (io.ENCODER_FILE, io.DECODER_FILE):
        if not (onnx_dir / name).is_file():
            raise FileNotFoundError(f"{onnx_dir / name} is missing: export the segmenter there first")
    decoder_profile = {
        io.POINT_COORDS: ((1, 1, 2), (1, opt_points, 2), (1, max_points, 2)),
        io.POINT_LABELS: ((1, 1), (1, opt_points), (1, max_points)),
    }
    build_plan(onnx_dir / io.ENCODER_FILE, plan_dir / io.ENCODER_PLAN, fp16=fp16, timing_cache=timing_cache)
    build_plan(
        onnx_dir / io.DECODER_FILE,
        plan_dir / io.DECODER_PLAN,
        profiles=[decoder_profile],
        fp16=fp16,
        timing_cache=timing_cache,
    )
    return {"encoder": io.ENCODER_PLAN, "decoder": io.DECODER_PLAN, "fp16": fp16, "max_points": max_points}


def build_engine_plans(
    root: str | Path,
    components: Mapping[str, Any],
    *,
    fp16: bool = True,
    timing_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Build the TensorRT plans of an engine directory under `root/trt/` and return the
    manifest's `trt` component: `{"tensorrt": version, "<component>": {plan entries}}`.

    Builds the segmenter's plans (`build_segmenter_plans`); components
    without a plan builder here keep running on ONNX Runtime.
    """
    root = Path(root)
    out: dict[str, Any] = {"tensorrt": tensorrt_version()}
    if "segmenter" in components:
        out["segmenter"] = build_segmenter_plans(
            root / "segmenter",
            root / "trt",
            meta=components["segmenter"],
            fp16=fp16,
            timing_cache=timing_cache,
        )
    return out
