"""`segzero-edge` command line. Each subcommand lives in its own module under
`segzero_edge.cli` and exposes `register(subparsers)`; heavy imports stay inside the
command functions so that `--help` is instant and torch-free."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..exit_codes import ExitCode, help_text
from ..safe_write import OutputError

#: Subcommand modules, in the order `--help` lists them. A module not present in this
#: install (a stage still to come) is simply not offered.
COMMAND_MODULES = ("segment", "export", "verify", "eval", "train", "bench", "demo", "synth")


class CliError(Exception):
    """A usage error: printed as one line, exit status 2 (`ExitCode.USAGE_ERROR`)."""


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C (finally blocks remove temp files), exit 143."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose paragraphs; keeps multi-line blocks (the exit-status table) verbatim."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in text.split("\n\n"):
            if "\n" in block.strip("\n"):
                blocks.append("\n".join(indent + line for line in block.splitlines()))
            else:
                blocks.append(super()._fill_text(block, width, indent))
        return "\n\n".join(blocks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segzero-edge",
        description="Seg-Zero reasoning segmentation on the edge: train, export, run, evaluate.",
        epilog=help_text(),
        formatter_class=HelpFormatter,
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
    for command in sub.choices.values():  # every command's --help shows the same table
        command.epilog = f"{command.epilog}\n\n{help_text()}" if command.epilog else help_text()
        if command.formatter_class is argparse.HelpFormatter:
            command.formatter_class = HelpFormatter
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (`segzero_edge.exit_codes.ExitCode`)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 here (argparse's own convention)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return ExitCode.OK
    previous = None
    try:  # SIGTERM unwinds like Ctrl-C, so partial outputs are removed on the way out
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:
        pass  # not the main thread (an embedding app): keep its handler
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("segzero-edge: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Terminated:
        print("segzero-edge: terminated", file=sys.stderr)
        return ExitCode.TERMINATED
    except (CliError, OutputError) as exc:
        print(f"segzero-edge {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    except Exception as exc:  # one line for users; SEGZERO_EDGE_DEBUG=1 shows the traceback
        if os.environ.get("SEGZERO_EDGE_DEBUG"):
            raise
        print(f"segzero-edge {args.command}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return ExitCode.RUNTIME_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
