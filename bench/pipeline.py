"""End-to-end latency per stage: PyTorch reference vs the runtime on the same weights, plus
the gain of `segment_many` (both models encode the image once) over separate calls.

    python bench/pipeline.py [--reasoner DIR --segmenter DIR] [--precision fp32,int8,int4]
                             [--repeats 5] [--queries 4] [--max-new-tokens 32] [--spin-modes off,run,on]

Without --reasoner/--segmenter it uses the tiny random test models. Medians over repeats,
measured side by side in one run. --spin-modes adds one runtime row per onnxruntime spin
policy (`ReasoningSegmenter.from_dir(spin=)`), so the policies are compared on every stage.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

STAGES = ("reasoner_vision_ms", "reasoner_prefill_ms", "reasoner_decode_ms", "segmenter_encode_ms",
          "segmenter_decode_ms", "total_ms")
QUERIES = ("the red circle", "the largest shape", "something that could roll", "the shape left of the star",
           "the only ring", "the smallest object", "the blue square", "the object on top")


def _median_timings(pipeline, image, query: str, repeats: int) -> dict[str, float]:
    """Per-stage medians. The segmenter is timed on a fixed prompt as well, because a random-
    weight reasoner rarely writes a parseable answer and the chain would stop before it."""
    reasoner, segmenter = pipeline.reasoner, pipeline.segmenter
    height, width = image.shape[:2]
    box, points = (width // 4, height // 4, 3 * width // 4, 3 * height // 4), ((width // 2, height // 2), (width // 3, height // 2))
    rows = []
    for index in range(repeats + 1):  # the first round warms sessions, allocators and caches
        start = time.perf_counter()
        encoded = reasoner.encode_image(image)
        vision_ms = (time.perf_counter() - start) * 1e3
        generation = reasoner.generate(encoded, query)
        start = time.perf_counter()
        embedding = segmenter.encode(image)
        encode_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        segmenter.decode(embedding, box, points)
        decode_ms = (time.perf_counter() - start) * 1e3
        row = {
            "reasoner_vision_ms": vision_ms, "reasoner_prefill_ms": generation.prefill_ms,
            "reasoner_decode_ms": generation.decode_ms, "segmenter_encode_ms": encode_ms,
            "segmenter_decode_ms": decode_ms, "tokens": float(generation.tokens),
        }
        row["total_ms"] = sum(v for k, v in row.items() if k.endswith("_ms"))
        if index:
            rows.append(row)
    return {k: statistics.median(r[k] for r in rows) for k in (*STAGES, "tokens")}


def _wall(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reasoner", default=None, help="reasoner dir (default: tiny random model)")
    parser.add_argument("--segmenter", default=None, help="segmenter dir (default: tiny random model)")
    parser.add_argument("--precision", default="fp32,int8,int4", help="reasoner precisions to export")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", type=int, default=4, help="queries for the segment_many comparison")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="forced length (the tiny model never stops)")
    parser.add_argument("--spin-modes", default="off", help="comma list of runtime spin policies (off, on, run)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference row")
    args = parser.parse_args(argv)
    from segzero_edge.runtime.providers import SPIN_POLICIES

    spins = [m for m in args.spin_modes.split(",") if m]
    if not spins or set(spins) - set(SPIN_POLICIES):
        parser.error(f"--spin-modes takes a comma list of {list(SPIN_POLICIES)}, got {args.spin_modes!r}")

    from segzero_edge.export.engine import ExportConfig, export_engines
    from segzero_edge.generation import GenerationConfig
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.pipeline import ReasoningPipeline
    from segzero_edge.runtime import ReasoningSegmenter

    if args.reasoner is None or args.segmenter is None:
        from segzero_edge.testing import cached_tiny_models

        tiny = cached_tiny_models()
        args.reasoner, args.segmenter = str(tiny.reasoner), str(tiny.segmenter)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    query = QUERIES[0]
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    backends = {}
    if not args.no_torch:
        backends["torch eager"] = ReasoningPipeline(
            TorchReasoner.from_pretrained(args.reasoner, config=config), TorchSegmenter.from_pretrained(args.segmenter)
        )
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision.split(","):
            out = Path(tmp) / precision
            export_engines(ExportConfig(reasoner=args.reasoner, segmenter=args.segmenter, out=out,
                                        reasoner_precision=precision, segmenter_precision="fp32"), progress=False)
            for spin in spins:
                name = f"runtime {precision}" + (f" spin {spin}" if len(spins) > 1 else "")
                backends[name] = ReasoningSegmenter.from_dir(out, max_new_tokens=args.max_new_tokens, spin=spin)
        print(f"# pipeline bench: {platform.processor() or platform.machine()}, image 640x480, "
              f"{args.max_new_tokens} tokens, median of {args.repeats}, spin {','.join(spins)}\n")
        rows = {name: _median_timings(p, image, query, args.repeats) for name, p in backends.items()}
        first = next(iter(rows))  # torch eager, else the first runtime row
        ref_total = rows[first]["total_ms"]
        header = "| back end | " + " | ".join(s.removesuffix("_ms") + " ms" for s in STAGES) + f" | tokens | speed-up vs {first} |"
        print(header)
        print("|" + "---|" * (len(STAGES) + 3))
        for name, row in rows.items():
            cells = " | ".join(f"{row[s]:.1f}" for s in STAGES)
            print(f"| {name} | {cells} | {row['tokens']:.0f} | {ref_total / row['total_ms']:.2f}x |")

        queries = list(QUERIES[: args.queries])
        print(f"\n## segment_many vs {len(queries)} separate segment() calls (wall ms, median of {args.repeats})\n")
        print("| back end | separate | segment_many | gain |\n|---|---|---|---|")
        for name, pipeline in backends.items():
            separate = _wall(lambda p=pipeline: [p.segment(image, q) for q in queries], args.repeats)
            many = _wall(lambda p=pipeline: p.segment_many(image, queries), args.repeats)
            print(f"| {name} | {separate:.1f} | {many:.1f} | {separate / many:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
