"""SAM2 encoder graphs side by side: wall and CPU time of one `session.run`, no torch.

    python bench/segmenter_encoders.py op18=/tmp/w/hiera-t/op18/fp32/encoder.onnx \\
        op20=/tmp/w/hiera-t/op20/fp32/encoder.onnx samexporter=/tmp/peer/encoder.onnx --threads 2

For graphs of one architecture from different exporters or opsets (e.g. `bench/segmenter.py
--workdir` graphs and `bench/samexporter_encoder.py`'s): every graph gets the same
preprocessed 480×640 random image (1024², ImageNet-normalised), --threads intra-op threads,
a warm-up run, then --repeats timed runs per pass, passes in alternating order (one session
alive at a time) so that drift on a shared machine hits them alike. Prints medians of wall
time and of CPU time (all threads of this process: on a shared machine a low-priority
bench's wall time is mostly waiting), and each graph's speed relative to the first.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import statistics
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("graphs", nargs="+", help="LABEL=PATH of an encoder ONNX graph (one image input)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per graph and pass")
    parser.add_argument("--passes", type=int, default=2, help="passes over the graphs, in alternating order")
    args = parser.parse_args(argv)
    graphs: dict[str, Path] = {}
    for item in args.graphs:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"expected LABEL=PATH of an existing file, got {item!r}")
        graphs[label] = Path(path)
    if min(args.repeats, args.passes, args.threads) < 1:
        parser.error("--repeats, --passes and --threads must be >= 1")

    from segzero_edge.graphs import segmenter_io as io
    from segzero_edge.graphs.sam_preprocess import preprocess_image
    from segzero_edge.runtime.providers import create_session

    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pixels = preprocess_image(image, io.IMAGE_SIZE, io.IMAGE_MEAN, io.IMAGE_STD)
    print(
        f"{len(graphs)} graphs, {args.threads} threads, {args.passes} passes × {args.repeats} runs, "
        f"cpu count {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    wall: dict[str, list[float]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    labels = list(graphs)
    for index in range(args.passes):
        for label in labels if index % 2 == 0 else labels[::-1]:
            session = create_session(graphs[label], "cpu", threads=args.threads)
            feeds = {session.get_inputs()[0].name: pixels}
            session.run(None, feeds)  # warm-up
            for _ in range(args.repeats):
                c, w = time.process_time(), time.perf_counter()
                session.run(None, feeds)
                wall[label].append((time.perf_counter() - w) * 1e3)
                cpu[label].append((time.process_time() - c) * 1e3)
            print(f"pass {index} {label}: wall {wall[label][-args.repeats:]} ms", flush=True)
            del session
            gc.collect()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print("| graph | MB | wall ms | CPU ms | speed vs first (wall) | speed vs first (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    first = labels[0]
    w0, c0 = statistics.median(wall[first]), statistics.median(cpu[first])
    for label in labels:
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        path = graphs[label]
        mb = sum(f.stat().st_size for f in (path, path.with_name(path.name + ".data")) if f.is_file()) / 1e6
        print(f"| {label} | {mb:.1f} | {w:.0f} | {c:.0f} | {w0 / w:.3f}× | {c0 / c:.3f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
