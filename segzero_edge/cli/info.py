"""`segzero-edge info`: each graph's precision, size and I/O, and the estimated peak memory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import CliError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "info",
        help="describe an engine directory: graphs, precisions, sizes, I/O, estimated peak memory",
        description="Describe an engine directory without loading it into onnxruntime: each graph's "
        "precision, size (external data included), inputs and outputs, and the estimated peak memory "
        "for sequences of --max-length tokens (segzero_edge.engine_info gives the formula).",
    )
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (default: the shipped engines)")
    parser.add_argument(
        "--max-length", type=int, default=2048,
        help="prompt + generated tokens the estimate covers (Seg-Zero at 840²: ~1,000 prompt tokens)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segzero_edge.engine_info import describe, format_text

    if args.max_length < 1:
        raise CliError(f"--max-length must be >= 1, got {args.max_length}")
    engines = args.engines
    if engines is None:
        from segzero_edge import default_engines

        engines = default_engines()
    elif not Path(engines).is_dir():
        raise CliError(f"--engines {engines}: no such directory")
    info = describe(engines, args.max_length)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
