"""`segzero-edge eval`: gIoU / cIoU on ReasonSeg, RefCOCO or LISA-layout data, either back end."""

from __future__ import annotations

import argparse
from pathlib import Path

from segzero_edge.eval_multi import BOX_METRICS
from segzero_edge.prompts import ANSWER_FORMATS
from segzero_edge.runtime.providers import PROVIDERS

from . import CliError
from .segment import add_spin_arg


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="evaluate gIoU/cIoU exactly as Seg-Zero does",
        description="Evaluate the engines (--engines) or the PyTorch reference (--reasoner/--segmenter) on a "
        "local dataset. Prints gIoU=… cIoU=… n=…; --out keeps per-sample JSONL and makes the run resumable.",
    )
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (runtime back end)")
    parser.add_argument("--reasoner", default=None, help="reasoner dir or Hub id (torch back end)")
    parser.add_argument("--segmenter", default=None, help="SAM2 dir, Hub id or Meta checkpoint file (sam2.1_hiera_tiny.pt; torch back end)")
    parser.add_argument("--provider", choices=PROVIDERS, default="cpu", help="runtime provider")
    parser.add_argument("--device", default="cpu", help="torch device for the reference back end")
    parser.add_argument("--data", type=Path, required=True, help="parquet file/folder, save_to_disk folder, or LISA folder")
    parser.add_argument("--format", choices=("auto", "hf", "lisa", "refcoco"), default="auto", help="dataset layout")
    parser.add_argument("--ignore-mode", choices=("segzero", "lisa"), default="segzero",
                        help="LISA 'ignore' polygons: foreground (Seg-Zero) or excluded from I and U (LISA)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N samples")
    parser.add_argument("--out", type=Path, default=None,
                        help="per-sample results JSONL; resumable by the same run only (engines, data, format, "
                        "limit, ignore mode and token budget are recorded and must match)")
    parser.add_argument("--restart", action="store_true", help="start --out over instead of resuming it")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reasoner token budget")
    add_spin_arg(parser)
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

        # Seg-Zero's evaluation decodes to EOS or the token budget: no repetition stop, so that
        # figures stay comparable with the paper's
        return ReasoningSegmenter.from_dir(
            args.engines, provider=args.provider, max_new_tokens=args.max_new_tokens, repetition_stop=None,
            spin=args.spin,
        )
    if not (args.reasoner and args.segmenter):
        raise CliError("pass --engines DIR, or both --reasoner SRC and --segmenter SRC")
    from segzero_edge.runtime.providers import DEFAULT_SPIN

    if args.spin != DEFAULT_SPIN:
        raise CliError(f"--spin {args.spin} sets onnxruntime's threads: it applies to --engines, not the torch back end")
    from segzero_edge.generation import GenerationConfig
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.pipeline import ReasoningPipeline

    config = GenerationConfig() if args.max_new_tokens is None else GenerationConfig(max_new_tokens=args.max_new_tokens)
    reasoner = TorchReasoner.from_pretrained(
        args.reasoner, device=args.device, config=config, answer_format=args.answer_format or "single"
    )
    return ReasoningPipeline(reasoner, TorchSegmenter.from_pretrained(args.segmenter, device=args.device))


def provenance(args: argparse.Namespace, fmt: str, answer_format: str):
    """What produced this run's results (recorded in --out's header)."""
    from segzero_edge.eval_results import Provenance, path_sha256
    from segzero_edge.evaluate import format_settings

    engines = None
    if args.engines is not None:
        engines = path_sha256(Path(args.engines) / "manifest.json")  # it holds every file's sha256
    return Provenance(
        engines_sha256=engines,
        reasoner=None if args.engines is not None else args.reasoner,
        segmenter=None if args.engines is not None else args.segmenter,
        data_sha256=path_sha256(args.data),
        data_format=fmt,
        limit=args.limit,
        ignore_mode=args.ignore_mode,
        max_new_tokens=args.max_new_tokens,
        **format_settings(answer_format, args.no_target, args.box_metric),
    )


def answer_format(args: argparse.Namespace) -> str:
    """The answer format this run will score, known before any model loads: the engines'
    manifest (single when it records none; --answer-format must agree), else --answer-format,
    else single."""
    if args.engines is None:
        return args.answer_format or "single"
    from segzero_edge.manifest import EngineError, engines_answer_format

    try:
        fmt = engines_answer_format(args.engines)
    except EngineError as exc:
        raise CliError(str(exc)) from exc
    if args.answer_format is not None and args.answer_format != fmt:
        raise CliError(
            f"the engines in {args.engines} render the {fmt!r} prompt, not {args.answer_format!r}; "
            "evaluate them without --answer-format, or use --reasoner/--segmenter"
        )
    return fmt


def run(args: argparse.Namespace) -> int:
    from segzero_edge.eval_results import ResultsMismatch, check
    from segzero_edge.evaldata import DataError, read_eval_set
    from segzero_edge.evaluate import evaluate
    from segzero_edge.file_lock import LockHeld
    from segzero_edge.safe_write import check_output

    if args.restart and args.out is None:
        raise CliError("--restart needs --out")
    if not Path(args.data).exists():
        raise CliError(f"--data {args.data}: not found")
    if args.engines is not None and not Path(args.engines).is_dir():
        raise CliError(f"--engines {args.engines}: no such directory")
    multi_only = [flag for flag, on in (("--no-target", args.no_target), ("--box-metric", args.box_metric != "any")) if on]
    expected = answer_format(args)
    if multi_only and expected != "multi":
        if args.engines is not None:
            raise CliError(f"{', '.join(multi_only)} apply to multi-object answers; these engines answer 'single'")
        raise CliError(f"{', '.join(multi_only)} need --answer-format multi")
    if args.out is not None:
        check_output(args.out, "--out")  # before any model work
    fmt = "hf" if args.format == "refcoco" else args.format
    record = provenance(args, fmt, expected) if args.out is not None else None
    if args.out is not None:
        try:
            check(args.out, record, restart=args.restart)  # a stale file is refused before model work
        except ResultsMismatch as exc:
            raise CliError(str(exc)) from exc
    pipeline = build_pipeline(args)
    try:
        samples = read_eval_set(args.data, fmt, limit=args.limit, ignore_mode=args.ignore_mode)
        summary = evaluate(
            pipeline, samples, args.out, total=args.limit, provenance=record, restart=args.restart,
            no_target=args.no_target, box_metric=args.box_metric,
        )  # fmt: skip
    except (DataError, ResultsMismatch, LockHeld) as exc:
        raise CliError(str(exc)) from exc
    if summary.resumed:
        print(f"resumed {summary.resumed} samples from {args.out}")
    print(f"failed={summary.failed} skipped_empty={summary.skipped}")
    print(summary.line())
    return 0
