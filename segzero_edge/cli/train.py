"""`segzero-edge train`: Seg-Zero GRPO with QLoRA, plus `train merge` and `train plot`.

segzero-edge train --config YAML [key=value ...] [--resume]
segzero-edge train merge --run RUN --out DIR [--dtype bfloat16|float32] [--base MODEL]
segzero-edge train plot RUN [--out PNG]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import CliError

ACTIONS = ("merge", "plot")


def _config_keys() -> str:
    """One line per TrainConfig field: the key=value overrides and YAML keys (torch-free import)."""
    import dataclasses

    from segzero_edge.train.config import TrainConfig

    lines = ["config keys (YAML or key=value):"]
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        lines.append(f"  {f.name} = {default!r}: {f.metadata.get('help', '')}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train the reasoner with GRPO + 4-bit QLoRA; merge an adapter; plot a run",
        description="Train: --config YAML [key=value ...] [--resume] (keys are the TrainConfig fields in "
        "train/configs/*.yaml). Merge: `train merge --run RUN --out DIR` writes base + adapter as a plain "
        "Hugging Face dir for `segzero-edge export`. Plot: `train plot RUN` writes RUN/metrics.png.",
        epilog="SIGTERM/SIGINT save a checkpoint after the current step and exit 143/130; "
        "continue with the same command plus --resume.\n\n" + _config_keys(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="[merge|plot] ... | key=value",
        help="`merge`, `plot RUN`, or config overrides such as learning_rate=2e-5 max_steps=100",
    )
    parser.add_argument("--config", type=Path, help="training config YAML (train/configs/*.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.add_argument("--run", type=Path, help="merge/plot: the run directory (a config's output_dir)")
    parser.add_argument(
        "--out", type=Path, help="merge: output model dir; plot: PNG path (default RUN/metrics.png)"
    )
    parser.add_argument(
        "--dtype",
        choices=["bfloat16", "float16", "float32"],
        default="bfloat16",
        help="merge: dtype of the merged weights (the base is never loaded in 4-bit here)",
    )
    parser.add_argument("--base", help="merge: base model (default: the run's config)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    items = list(args.items)
    if items and items[0] in ACTIONS:
        if args.config is not None or args.resume:
            raise CliError(f"`train {items[0]}` takes no --config/--resume")
        return _merge(args, items[1:]) if items[0] == "merge" else _plot(args, items[1:])
    return _train(args, items)


def _log_to_stderr() -> None:
    logger = logging.getLogger("segzero_edge.train")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("segzero-edge train: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.config is None:
        raise CliError("--config YAML is required (e.g. train/configs/tiny_cpu.yaml)")
    if args.run is not None or args.out is not None or args.base is not None:
        raise CliError("--run/--out/--base belong to `train merge` and `train plot`")
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise CliError(f"expected key=value overrides, got {bad}")
    from segzero_edge.train.config import load_config

    try:
        config = load_config(args.config, overrides)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    config = _resolve_tiny(config)
    _log_to_stderr()
    from segzero_edge.train.trainer import run_training

    try:
        result = run_training(config, resume=args.resume)
    except (FileExistsError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    if result.interrupted_by:
        print(
            f"stopped by {result.interrupted_by} at step {result.global_step}; checkpoint {result.last_checkpoint}; "
            f"continue with: segzero-edge train --config {args.config} {' '.join(overrides)} --resume".rstrip()
        )
    else:
        print(
            f"trained {result.global_step} steps; adapter in {result.output_dir}; metrics in {result.output_dir}/metrics.csv"
        )
    return result.exit_code


def _resolve_tiny(config):
    """model: tiny (CPU smoke runs) names the tiny random test model: the CLI builds or finds
    it here, so `segzero_edge.train` never imports the test helpers."""
    if config.model != "tiny":
        return config
    import dataclasses

    from segzero_edge.testing import cached_tiny_models

    return dataclasses.replace(config, model=str(cached_tiny_models().reasoner))


def _merge(args: argparse.Namespace, rest: list[str]) -> int:
    if rest:
        raise CliError(f"unexpected arguments for `train merge`: {rest}")
    if args.run is None or args.out is None:
        raise CliError("`train merge` needs --run RUN and --out DIR")
    from segzero_edge.safe_write import check_output_dir

    check_output_dir(args.out, "--out")  # before loading any model
    _log_to_stderr()
    from segzero_edge.train.merge import merge_adapter

    try:
        out = merge_adapter(args.run, args.out, dtype=args.dtype, base=args.base)
    except (FileExistsError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    print(f"merged model written to {out}")
    return 0


def _plot(args: argparse.Namespace, rest: list[str]) -> int:
    runs = [Path(r) for r in rest] + ([args.run] if args.run is not None else [])
    if len(runs) != 1:
        raise CliError("`train plot` takes one run directory: segzero-edge train plot RUN [--out PNG]")
    from segzero_edge.safe_write import check_output
    from segzero_edge.train.plot import plot_run

    check_output(args.out if args.out is not None else runs[0] / "metrics.png", "--out")
    try:
        out = plot_run(runs[0], args.out)
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    print(f"plot written to {out}")
    return 0
