"""`segzero-edge synth`: write the synthetic reasoning-segmentation splits, or preview a scene."""

from __future__ import annotations

import argparse
from pathlib import Path

from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

from . import CliError


def register(sub: argparse._SubParsersAction) -> None:
    from segzero_edge.synthetic.dataset import SynthConfig  # numpy + pillow only: cheap

    parser = sub.add_parser(
        "synth",
        help="generate the synthetic shapes dataset (ReasonSeg layout) or preview a scene",
        description="Write OUT/{train,val,test,zeroshot}.parquet + OUT/info.json in ReasonSeg's Hugging Face "
        "layout (evaluate with `segzero-edge eval --data OUT/test.parquet`), or with --preview render one "
        "scene (scene seed = --seed) with all its queries and masks to a PNG.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="output folder (written atomically)")
    target.add_argument(
        "--preview", type=Path, metavar="PNG", help="render one scene + queries + masks to this PNG"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--answer-format", choices=("single", "multi"), default="single",
        help="single: one target per query (train/val/test/zeroshot); multi: multi-target and no-target "
        "queries for Seg-Zero's multi-object format (train/val/test, Seg-Zero's JSON solution, union masks)",
    )  # fmt: skip
    parser.add_argument(
        "--no-target-rate", type=float, default=None,
        help="multi: share of queries whose answer is no object (default 0.15)",
    )  # fmt: skip
    add_dataclass_args(parser, SynthConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segzero_edge.synthetic.dataset import SynthConfig, write_dataset

    try:
        config = dataclass_from_args(SynthConfig, args)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    from segzero_edge.safe_write import check_output, check_output_dir

    if args.preview is not None:
        check_output(args.preview, "--preview")
        return _preview(args.preview, config)
    check_output_dir(args.out, "--out")
    if args.out.exists() and not args.overwrite:
        raise CliError(f"{args.out} already exists; pass --overwrite to replace it")
    if args.no_target_rate is not None and args.answer_format != "multi":
        raise CliError("--no-target-rate applies to --answer-format multi")
    if args.answer_format == "multi":
        return _write_multi(args, config)
    info = write_dataset(
        args.out,
        sizes=config.sizes,
        size=config.image_size,
        seed=config.seed,
        progress=not args.no_progress,
        difficulty=config.difficulty,
        queries_per_image=config.queries_per_image,
        overwrite=args.overwrite,
    )
    for split, stats in info["splits"].items():
        print(
            f"{split}: {stats['rows']} rows from {stats['scenes']} scenes, {len(stats['templates'])} templates"
        )
    print(f"wrote {args.out} in {info['seconds']} s")
    return 0


def _write_multi(args: argparse.Namespace, config) -> int:
    from segzero_edge.synthetic.multi_dataset import NO_TARGET_RATE, write_multi_dataset

    rate = NO_TARGET_RATE if args.no_target_rate is None else args.no_target_rate
    if not 0.0 <= rate <= 1.0:
        raise CliError(f"--no-target-rate must lie in [0, 1], got {rate}")
    if config.queries_per_image != 1:
        raise CliError("--answer-format multi writes one query per scene; drop --queries-per-image")
    info = write_multi_dataset(
        args.out,
        sizes={split: getattr(config, split) for split in ("train", "val", "test")},
        size=config.image_size,
        seed=config.seed,
        progress=not args.no_progress,
        difficulty=config.difficulty,
        no_target_rate=rate,
        overwrite=args.overwrite,
    )
    for split, stats in info["splits"].items():
        print(f"{split}: {stats['rows']} rows, targets per row {stats['targets_per_row']}")
    print(f"wrote {args.out} in {info['seconds']} s (multi-object format; no zero-shot split)")
    return 0


def _preview(path: Path, config) -> int:
    import numpy as np

    from segzero_edge.synthetic import TEMPLATES, SceneConfig, make_queries, render_preview, render_scene

    scene = render_scene(config.seed, config.image_size, config=SceneConfig(difficulty=config.difficulty))
    queries = make_queries(scene, np.random.default_rng([scene.seed, 1]), list(TEMPLATES))
    import io

    from segzero_edge.safe_write import atomic_write_bytes

    buf = io.BytesIO()
    render_preview(scene, queries).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue(), "--preview")
    print(f"scene seed {scene.seed}: {len(scene.objects)} objects, {len(queries)} queries -> {path}")
    for q in queries:
        print(f"  [{q.template}] {q.text} -> #{q.target} {scene.objects[q.target].name}")
    return 0
