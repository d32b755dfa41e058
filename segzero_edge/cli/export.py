"""`segzero-edge export`: both models → one verified engine directory."""

from __future__ import annotations

import argparse

from segzero_edge.dataclass_args import add_dataclass_args


def register(sub: argparse._SubParsersAction) -> None:
    from segzero_edge.export.engine import ExportConfig

    parser = sub.add_parser(
        "export",
        help="export reasoner + segmenter to quantized ONNX (and TensorRT) engines",
        description="Export a Qwen2.5-VL reasoner and a SAM2 segmenter (local dirs or Hub ids; the segmenter also "
        "as a checkpoint file from Meta's sam2 repository) to an engine "
        "directory with manifest.json. Written atomically: an interrupted export leaves nothing behind.",
    )
    add_dataclass_args(parser, ExportConfig)
    parser.add_argument("--verify", action="store_true", help="run the parity checks after exporting")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segzero_edge.dataclass_args import dataclass_from_args
    from segzero_edge.export.engine import ExportConfig, ExportLocked, export_engines
    from segzero_edge.safe_write import check_output_dir

    from . import CliError

    try:
        config = dataclass_from_args(ExportConfig, args)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    check_output_dir(config.out, "--out")
    from segzero_edge.models.sam2_meta import MetaCheckpointError

    try:
        out = export_engines(config)
    except (FileExistsError, ExportLocked, MetaCheckpointError) as exc:  # all raised before any model work
        raise CliError(str(exc)) from exc
    from segzero_edge.export.engine import reused_segmenter

    reused = reused_segmenter(config.segmenter)  # None for a checkpoint; an engine dir is re-verified
    segmenter = config.segmenter_precision
    if reused is not None:  # a reused segmenter keeps the precision it was exported at
        precision = reused.component("segmenter").get("precision", {})
        segmenter = "/".join(f"{graph}={p}" for graph, p in precision.items()) or "as exported"
    print(f"wrote {out} (reasoner {config.reasoner_precision}, segmenter {segmenter})")
    if args.verify:
        from .verify import verify_dir

        if reused is not None:  # copied graphs: their hashes are the check
            print("segmenter graphs reused from an engine directory: verifying the reasoner only")
            return verify_dir(out, reasoner=config.reasoner, stages=("reasoner",))
        return verify_dir(out, reasoner=config.reasoner, segmenter=config.segmenter)
    return 0
