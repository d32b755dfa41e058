"""`segzero-edge` command line. Each subcommand lives in its own module under
`segzero_edge.cli` and exposes `register(subparsers)`; heavy imports stay inside the
command functions so that `--help` is instant and torch-free."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__

#: Subcommand modules, in the order `--help` lists them. A module not present in this
#: install (a stage still to come) is simply not offered.
COMMAND_MODULES = ("segment", "export", "verify", "eval", "train", "bench", "demo", "synth")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segzero-edge",
        description="Seg-Zero reasoning segmentation on the edge: train, export, run, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"segzero-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("segzero-edge: interrupted", file=sys.stderr)
        return 130
    except CliError as exc:
        print(f"segzero-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line for users; SEGZERO_EDGE_DEBUG=1 shows the traceback
        if os.environ.get("SEGZERO_EDGE_DEBUG"):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"segzero-edge {args.command}: error: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
