"""`segzero-edge bench NAME [args…]`: run one of the bench/ scripts of a source checkout."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from . import CliError


def bench_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "bench"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="run a benchmark script (segmenter, reasoner, pipeline, train_memory)",
        description="Runs bench/NAME.py from the source checkout; arguments after NAME go to the script. "
        "Figures are medians measured side by side in one run.",
    )
    parser.add_argument("name", help="script name, e.g. segmenter, reasoner, pipeline, train_memory")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = bench_dir()
    script = root / f"{args.name.replace('-', '_')}.py"
    if not script.is_file():
        found = sorted(p.stem for p in root.glob("*.py")) if root.is_dir() else []
        raise CliError(f"no bench script {script.name} in {root}; available: {', '.join(found) or 'none (not a source checkout)'}")
    argv = sys.argv
    sys.argv = [str(script), *args.script_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = argv
    return 0
