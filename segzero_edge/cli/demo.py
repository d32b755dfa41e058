"""`segzero-edge demo`: render a fresh synthetic scene, ask the engines a reasoning query,
and write an overlay PNG with the reasoning, the answer, the stage timings and the IoU
against the scene's ground truth.

It runs the shipped engines (the embedded default). A source checkout without them falls
back to engines exported from the tiny random-weight test models, says so, and still runs
the whole runtime for real (their answers are noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from segzero_edge.runtime.providers import PROVIDERS

from .segment import add_spin_arg


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the engines on a new synthetic scene and write an overlay PNG",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--engines", type=Path, default=None, help="engine directory (default: the shipped engines)")
    parser.add_argument("--seed", type=int, default=None, help="scene seed (default: a new one each run)")
    parser.add_argument("--query", default=None, help="your own query instead of a generated one")
    parser.add_argument("--out", type=Path, default=Path("demo.png"), help="overlay PNG to write")
    parser.add_argument("--provider", choices=PROVIDERS, default="cpu", help="execution provider")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="reasoner token budget (default: manifest)")
    add_spin_arg(parser)
    parser.set_defaults(func=run)


def _fallback_engines() -> Path:
    """Engines exported once from the tiny random models, cached next to them."""
    from segzero_edge.export.engine import ExportConfig, export_engines
    from segzero_edge.testing import cache_root, cached_tiny_models

    tiny = cached_tiny_models()
    out = cache_root() / f"demo-engines-{tiny.reasoner.parent.name}"
    if not (out / "manifest.json").is_file():
        print(f"exporting the tiny random-weight models to {out} (once) ...")
        export_engines(ExportConfig(reasoner=str(tiny.reasoner), segmenter=str(tiny.segmenter), out=out,
                                    reasoner_precision="int8", segmenter_precision="fp32", force=True))
    return out


#: Demo scenes come from the synthetic test split under this base seed: never trained on, and not
#: the rows the shipped figures were measured on (base seed 0).
DEMO_BASE_SEED = 1


def demo_case(seed: int):
    """(scene, query text, target object or None) for demo seed `seed`, as `segzero-edge demo` shows it."""
    import numpy as np

    from segzero_edge.synthetic import SEEN_TEMPLATES, make_queries, render_scene, split_seed

    scene = render_scene(split_seed("test", seed, DEMO_BASE_SEED))
    rng = np.random.default_rng(seed)
    queries = make_queries(scene, rng, SEEN_TEMPLATES)
    if not queries:
        return scene, "the largest shape", None
    chosen = queries[int(rng.integers(len(queries)))]
    return scene, chosen.text, scene.objects[chosen.target]


def run(args: argparse.Namespace) -> int:
    import secrets

    from segzero_edge import default_engines
    from segzero_edge.metrics import intersection_union
    from segzero_edge.overlay import render_overlay
    from segzero_edge.runtime import ReasoningSegmenter
    from segzero_edge.safe_write import atomic_write_bytes, check_output

    from .segment import check_engines_arg, print_result

    check_output(args.out, "--out")  # before any model work
    check_engines_arg(args)
    engines = args.engines
    random_weights = False
    if engines is None:
        try:
            engines = default_engines()
        except FileNotFoundError:
            print("no shipped engines in this install: using the tiny RANDOM-WEIGHT test models "
                  "(the runtime runs for real; the answer is noise)")
            engines, random_weights = _fallback_engines(), True
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    scene, query_text, target = demo_case(seed)
    if args.query:
        query_text, target = args.query, None
    print(f"scene seed {seed}: {len(scene.objects)} objects ({', '.join(o.name for o in scene.objects)})")
    seg = ReasoningSegmenter.from_dir(
        engines, provider=args.provider, max_new_tokens=args.max_new_tokens, spin=args.spin
    )
    print(f"engines: {engines}")
    result = seg.segment(scene.image, query_text)
    print_result(result)
    if target is not None:
        inter, union = intersection_union(result.mask if result.ok else None, target.mask)
        print(f"ground truth: {target.name}; mask IoU = {inter / union:.3f}")
    import io

    buf = io.BytesIO()
    render_overlay(scene.image, result).save(buf, format="PNG")
    atomic_write_bytes(args.out, buf.getvalue(), "--out")
    print(f"overlay:  {args.out}")
    if random_weights:
        print("(random weights: export your own trained models with `segzero-edge export` for real answers)")
    return 0
