"""`segzero-edge segment`: one image, one or more queries, an overlay PNG and a JSON result."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segzero_edge.runtime.providers import DEFAULT_SPIN, PROVIDERS, SPIN_POLICIES
from segzero_edge.safe_write import atomic_write_bytes, check_output

from . import CliError


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (default: the shipped engines)")
    parser.add_argument("--provider", choices=PROVIDERS, default="cpu", help="execution provider")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reasoner token budget (default: manifest)")
    parser.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: manifest)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    parser.add_argument(
        "--max-time-s", type=float, default=None,
        help="wall-clock budget of each query in seconds; when it runs out decoding stops and the query fails "
        "with its partial text (default: none)",
    )
    parser.add_argument(
        "--no-repetition-stop", action="store_true",
        help="let a runaway answer run to --max-new-tokens (default: cut a block repeated 4 times back to back, "
        "segzero_edge.stopping.RepetitionStop)",
    )
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per graph (default: one per core)")
    add_spin_arg(parser)
    parser.add_argument("--device-id", type=int, default=0, help="GPU index (cuda, tensorrt)")
    parser.add_argument("--trt-fp16", action="store_true", help="tensorrt: let TensorRT build fp16 kernels")
    parser.add_argument(
        "--trt-cache-dir", type=Path, default=None,
        help="tensorrt: keep built TensorRT engines and the timing cache here, so the next start does not rebuild them",
    )


def add_spin_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spin", choices=SPIN_POLICIES, default=DEFAULT_SPIN,
        help="onnxruntime thread spinning: off (idle threads sleep; best when other work shares the cores), "
        "on (they busy-wait, also between calls; fastest decode on a dedicated machine), run (they busy-wait "
        f"only while a graph runs). Default: {DEFAULT_SPIN}; README 'Thread spinning' has the measurements",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment",
        help="segment the object a free-text query describes",
        description="Run the engines on an image: prints the reasoning, the answer and stage timings; "
        "writes an overlay PNG and a JSON result.",
    )
    add_engine_args(parser)
    parser.add_argument("--image", type=Path, required=True, help="input image (any format PIL reads)")
    parser.add_argument("--query", action="append", required=True, help="what to find; repeat for several queries")
    parser.add_argument("--out", type=Path, default=None, help="overlay PNG (with several queries: OUT-<i>.png)")
    parser.add_argument("--json", type=Path, default=None, help="write the result(s) as JSON")
    parser.set_defaults(func=run)


def check_engines_arg(args: argparse.Namespace) -> None:
    """A named engine directory that does not exist is a usage error (an existing but broken
    one is an EngineError at load: a runtime error)."""
    if args.engines is not None and not Path(args.engines).is_dir():
        raise CliError(f"--engines {args.engines}: no such directory")


def check_engine_settings(args: argparse.Namespace) -> None:
    """Settings refused before any model loads (usage errors, exit 2)."""
    if args.max_time_s is not None and not args.max_time_s > 0:
        raise CliError(f"--max-time-s must be > 0 seconds, got {args.max_time_s}")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")
    if args.device_id < 0:
        raise CliError(f"--device-id must be >= 0, got {args.device_id}")
    if args.provider != "tensorrt" and (args.trt_fp16 or args.trt_cache_dir is not None):
        raise CliError(f"--trt-fp16 and --trt-cache-dir apply to --provider tensorrt, not {args.provider}")
    if args.provider == "cpu" and args.device_id != 0:
        raise CliError("--device-id applies to --provider cuda or tensorrt")


def load_segmenter(args: argparse.Namespace):
    from segzero_edge.runtime import ReasoningSegmenter
    from segzero_edge.stopping import RepetitionStop

    return ReasoningSegmenter.from_dir(
        args.engines,
        provider=args.provider,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        max_time_s=args.max_time_s,
        repetition_stop=None if args.no_repetition_stop else RepetitionStop(),
        threads=args.threads,
        spin=args.spin,
        device_id=args.device_id,
        trt_fp16=args.trt_fp16,
        trt_cache_dir=args.trt_cache_dir,
    )


#: How much of a thinking or answer text the CLI prints (a runaway answer is 1,000+ tokens).
MAX_PRINT_LINES = 4
PRINT_WIDTH = 100


def clip_text(text: str, lines: int = MAX_PRINT_LINES, width: int = PRINT_WIDTH) -> str:
    """`text` folded to `width` columns and cut to `lines` lines, saying how much was left out."""
    import textwrap

    wrapped = [part for line in text.strip().splitlines() for part in (textwrap.wrap(line, width) or [""])]
    if len(wrapped) <= lines:
        return "\n          ".join(wrapped)
    shown = wrapped[:lines]
    left = len(text.strip()) - sum(len(line) for line in shown)
    shown[-1] += f" ... [{max(left, 1)} more characters; --json keeps the full text]"
    return "\n          ".join(shown)


def overlay_paths(out: Path | None, count: int) -> list[Path]:
    """The overlay file of each query: OUT itself, or OUT-<i>.png for several queries."""
    if out is None:
        return []
    return [out] if count == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(count)]


def print_result(result) -> None:
    from segzero_edge.overlay import describe_objects

    print(f"query:    {result.query}")
    if result.thinking:
        print(f"thinking: {clip_text(result.thinking)}")
    print(f"answer:   {clip_text(result.answer_text)}")
    if result.ok:
        print(f"{describe_objects(result)} mask_area={int(result.mask.sum())}")
    else:
        print(f"FAILED:   {result.error}")
    for warning in result.warnings:
        print(f"warning:  {warning}")
    t = result.timings
    parts = [f"{k.removesuffix('_ms')}={v:.1f}ms" for k, v in t.items() if k.endswith("_ms")]
    print("timings:  " + " ".join(parts) + (f" tokens={int(t['tokens'])}" if "tokens" in t else ""))


def run(args: argparse.Namespace) -> int:
    import io

    from segzero_edge.exit_codes import ExitCode
    from segzero_edge.images import ImageError, load_image
    from segzero_edge.overlay import render_overlay

    # every output is checked before any model work: a refused path costs nothing
    overlays = overlay_paths(args.out, len(args.query))
    for path in overlays:
        check_output(path, "--out")
    if args.json is not None:
        check_output(args.json, "--json")
    check_engines_arg(args)
    check_engine_settings(args)
    try:
        image = load_image(args.image)
    except ImageError as exc:
        raise CliError(f"--image: {exc}") from exc
    seg = load_segmenter(args)
    results = seg.segment_many(image, args.query)
    for index, result in enumerate(results):
        if index:
            print()
        print_result(result)
        if overlays:
            buf = io.BytesIO()
            render_overlay(image, result).save(buf, format="PNG")
            atomic_write_bytes(overlays[index], buf.getvalue(), "--out")
            print(f"overlay:  {overlays[index]}")
    if args.json is not None:
        payload = [r.to_json() for r in results]
        atomic_write_bytes(args.json, json.dumps(payload[0] if len(payload) == 1 else payload, indent=2).encode(), "--json")
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.QUERIES_FAILED
