"""`segzero-edge segment`: one image, one or more queries, an overlay PNG and a JSON result."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from segzero_edge.runtime.providers import PROVIDERS


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (default: the shipped engines)")
    parser.add_argument("--provider", choices=PROVIDERS, default="cpu", help="execution provider")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reasoner token budget (default: manifest)")
    parser.add_argument("--temperature", type=float, default=None, help="0 = greedy (default: manifest)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")


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


def load_segmenter(args: argparse.Namespace):
    from segzero_edge.runtime import ReasoningSegmenter

    return ReasoningSegmenter.from_dir(
        args.engines, provider=args.provider, max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed
    )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def print_result(result) -> None:
    print(f"query:    {result.query}")
    if result.thinking:
        print(f"thinking: {result.thinking.strip()}")
    print(f"answer:   {result.answer_text.strip()}")
    if result.ok:
        print(f"bbox={list(result.bbox)} points={[list(p) for p in result.points]} mask_area={int(result.mask.sum())}")
    else:
        print(f"FAILED:   {result.error}")
    for warning in result.warnings:
        print(f"warning:  {warning}")
    t = result.timings
    parts = [f"{k.removesuffix('_ms')}={v:.1f}ms" for k, v in t.items() if k.endswith("_ms")]
    print("timings:  " + " ".join(parts) + (f" tokens={int(t['tokens'])}" if "tokens" in t else ""))


def run(args: argparse.Namespace) -> int:
    import io

    from segzero_edge.images import load_image
    from segzero_edge.overlay import render_overlay

    image = load_image(args.image)
    seg = load_segmenter(args)
    results = seg.segment_many(image, args.query)
    for index, result in enumerate(results):
        if index:
            print()
        print_result(result)
        if args.out is not None:
            path = args.out if len(results) == 1 else args.out.with_name(f"{args.out.stem}-{index}{args.out.suffix}")
            buf = io.BytesIO()
            render_overlay(image, result).save(buf, format="PNG")
            _atomic_write_bytes(path, buf.getvalue())
            print(f"overlay:  {path}")
    if args.json is not None:
        payload = [r.to_json() for r in results]
        _atomic_write_bytes(args.json, json.dumps(payload[0] if len(payload) == 1 else payload, indent=2).encode())
    return 0 if all(r.ok for r in results) else 3
