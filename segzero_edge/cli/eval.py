"""`segzero-edge eval`: gIoU / cIoU on ReasonSeg, RefCOCO or LISA-layout data, either back end."""

from __future__ import annotations

import argparse
from pathlib import Path

from segzero_edge.eval_multi import BOX_METRICS
from segzero_edge.prompts import ANSWER_FORMATS

from . import CliError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate gIoU/cIoU exactly as Seg-Zero does",
        description="Evaluate the engines (--engines) or the PyTorch reference (--reasoner/--segmenter) on a "
        "local dataset. Prints gIoU=… cIoU=… n=…; --out keeps per-sample JSONL and makes the run resumable.",
    )
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (runtime back end)")
    parser.add_argument("--reasoner", default=None, help="reasoner dir or Hub id (torch back end)")
    parser.add_argument("--segmenter", default=None, help="SAM2 dir or Hub id (torch back end)")
    parser.add_argument("--provider", choices=("cpu", "cuda", "tensorrt"), default="cpu", help="runtime provider")
    parser.add_argument("--device", default="cpu", help="torch device for the reference back end")
    parser.add_argument("--data", type=Path, required=True, help="parquet file/folder, save_to_disk folder, or LISA folder")
    parser.add_argument("--format", choices=("auto", "hf", "lisa", "refcoco"), default="auto", help="dataset layout")
    parser.add_argument("--ignore-mode", choices=("segzero", "lisa"), default="segzero",
                        help="LISA 'ignore' polygons: foreground (Seg-Zero) or excluded from I and U (LISA)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N samples")
    parser.add_argument("--out", type=Path, default=None, help="per-sample results JSONL (resumable)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reasoner token budget")
    parser.add_argument(
        "--answer-format", choices=ANSWER_FORMATS, default=None,
        help="single: Seg-Zero's original one-object answers; multi: its current (VisionReasoner) list of "
        "objects, scored as evaluation_visionreasoner.py does (union mask, box metric). Default: the "
        "engines' format, or single for --reasoner",
    )  # fmt: skip
    parser.add_argument(
        "--no-target", action="store_true",
        help="multi: VisionReasoner's no-target handling: an empty ground truth answered with no box "
        "scores IoU 1 (else 0) and N-Acc is reported",
    )  # fmt: skip
    parser.add_argument(
        "--box-metric", choices=BOX_METRICS, default="any",
        help="multi: a box hit is any predicted box with IoU > 0.5 (Seg-Zero), or also the box enclosing "
        "them all (any-or-enclosing)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def build_pipeline(args: argparse.Namespace):
    if args.engines is not None and (args.reasoner or args.segmenter):
        raise CliError("pass either --engines or --reasoner/--segmenter, not both")
    if args.engines is not None:
        from segzero_edge.runtime import ReasoningSegmenter

        pipeline = ReasoningSegmenter.from_dir(args.engines, provider=args.provider, max_new_tokens=args.max_new_tokens)
        fmt = getattr(pipeline, "answer_format", "single")
        if args.answer_format is not None and args.answer_format != fmt:
            raise CliError(
                f"the engines in {args.engines} render the {fmt!r} prompt, not {args.answer_format!r}; "
                "evaluate them without --answer-format, or use --reasoner/--segmenter"
            )
        return pipeline
    if not (args.reasoner and args.segmenter):
        raise CliError("pass --engines DIR, or both --reasoner SRC and --segmenter SRC")
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.pipeline import ReasoningPipeline
    from segzero_edge.runtime.decoder import GenerationConfig

    config = GenerationConfig() if args.max_new_tokens is None else GenerationConfig(max_new_tokens=args.max_new_tokens)
    reasoner = TorchReasoner.from_pretrained(
        args.reasoner, device=args.device, config=config, answer_format=args.answer_format or "single"
    )
    return ReasoningPipeline(reasoner, TorchSegmenter.from_pretrained(args.segmenter, device=args.device))


def run(args: argparse.Namespace) -> int:
    from segzero_edge.evaldata import read_eval_set
    from segzero_edge.evaluate import evaluate

    multi_only = [flag for flag, on in (("--no-target", args.no_target), ("--box-metric", args.box_metric != "any")) if on]
    if multi_only and args.answer_format != "multi" and args.engines is None:
        raise CliError(f"{', '.join(multi_only)} need --answer-format multi")
    pipeline = build_pipeline(args)
    if multi_only and pipeline.answer_format != "multi":
        raise CliError(f"{', '.join(multi_only)} apply to multi-object answers; these engines answer 'single'")
    fmt = "hf" if args.format == "refcoco" else args.format
    samples = read_eval_set(args.data, fmt, limit=args.limit, ignore_mode=args.ignore_mode)
    try:
        summary = evaluate(
            pipeline, samples, args.out, total=args.limit, no_target=args.no_target, box_metric=args.box_metric
        )
    except ValueError as exc:  # a results file from another run's settings
        raise CliError(str(exc)) from exc
    if summary.resumed:
        print(f"resumed {summary.resumed} samples from {args.out}")
    print(f"failed={summary.failed} skipped_empty={summary.skipped}")
    print(summary.line())
    return 0
