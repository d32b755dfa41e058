"""`segzero-edge bench NAME [args…]`: run one of the bench/ scripts of a source checkout.

The scripts are not part of the installed package (they print figures for the README and
need the export stack): this command works from an editable install of a checkout."""

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
        help="run a benchmark script of a source checkout (segmenter, reasoner, peers, pipeline, soak, train_memory)",
        description="Runs bench/NAME.py of the source checkout this package was installed from (`pip install -e .`); "
        "the bench/ scripts are not installed with the package, so a regular install has none. Arguments after "
        "NAME go to the script. Figures are medians measured side by side in one run.",
    )
    parser.add_argument("name", help="script name, e.g. segmenter, reasoner, pipeline, train_memory")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments for the script")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = bench_dir()
    script = root / f"{args.name.replace('-', '_')}.py"
    if not script.is_file():
        found = sorted(p.stem for p in root.glob("*.py")) if root.is_dir() else []
        raise CliError(
            f"no bench script {script.name} in {root}; available: "
            f"{', '.join(found) or 'none (bench/ ships with a source checkout: clone it and pip install -e .)'}"
        )
    argv = sys.argv
    sys.argv = [str(script), *args.script_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = argv
    return 0
