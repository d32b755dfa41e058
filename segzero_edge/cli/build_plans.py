"""`segzero-edge build-plans`: TensorRT plans from the ONNX graphs already in an engine
directory, built on the device that runs them (no torch, no source models)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CliError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "build-plans",
        help="build TensorRT plans on this device from an engine directory's ONNX graphs",
        description="Build TensorRT plans for the segmenter from the ONNX graphs in --engines, on the GPU that will "
        "run them (a plan only runs on the TensorRT version and GPU that built it; `segment --provider tensorrt` "
        "refuses others). The plans and their manifest entries (sha256, TensorRT version, GPU name) are written "
        "atomically; earlier plans are removed once the new ones are listed. Needs TensorRT 10 and the CUDA "
        "runtime (pip install 'segzero-edge[trt]', or JetPack's python3-libnvinfer on Jetson); no torch.",
    )
    parser.add_argument("--engines", type=Path, required=True, help="engine directory (made by `segzero-edge export`)")
    parser.add_argument("--fp16", action="store_true", help="let TensorRT pick fp16 kernels where faster")
    parser.add_argument("--workspace-gb", type=float, default=4.0, help="builder scratch memory limit in GiB")
    parser.add_argument("--device-id", type=int, default=0, help="GPU to build for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.engines.is_dir():
        raise CliError(f"--engines {args.engines}: no such directory")
    if not args.workspace_gb > 0:
        raise CliError(f"--workspace-gb must be > 0, got {args.workspace_gb}")
    if args.device_id < 0:
        raise CliError(f"--device-id must be >= 0, got {args.device_id}")
    from segzero_edge.export.tensorrt import import_tensorrt

    import_tensorrt()  # a missing TensorRT is one line, before the directory is locked or read
    from segzero_edge.export.build_plans import build_plans_in_place

    print(f"building TensorRT plans for {args.engines} (minutes on a Jetson) ...", flush=True)
    trt = build_plans_in_place(
        args.engines, fp16=args.fp16, workspace_gib=args.workspace_gb, device_id=args.device_id
    )
    print(f"built with TensorRT {trt['tensorrt']} for {trt['gpu']}: {trt.get('segmenter')}")
    return 0
