"""Symmetric vs asymmetric int4 for the vocabulary-sized weights (lm_head, embedding table).

    python bench/int4_head.py [--shapes 896x151936,2048x151936,896x4864] [--threads 2] [--repeats 200]

For each K x N weight (random, fp32), one-node graphs are quantized by the exporter's own
`quantize_int4` (block --block-size, accuracy level --accuracy-level) both ways:

- MatMul [1, K] @ [K, N] -> MatMulNBits, asymmetric (uint4 + a zero point per block, the export
  default) vs symmetric (int4, no zero points): a decode step's lm_head when N is the vocabulary;
- Gather of one row of the [N, K] table -> GatherBlockQuantized, both ways: a decode step's
  token embedding (embed.onnx).

The variants take turns call by call (so load changes on a shared machine hit them alike);
medians in µs and the symmetric / asymmetric time ratio are printed, with each quantized
weight's relative error against fp32 (root mean square, over the whole matrix).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _graphs(k: int, n: int, work: Path, block: int, level: int) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.export.precision import quantize_int4

    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((k, n)) * 0.02).astype(np.float32)
    mm = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="final/lm_head")], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(weight, "W")],
    )
    gather = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"], name="embed")], "gather",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "s"])],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, "s", k])],
        [numpy_helper.from_array(np.ascontiguousarray(weight.T), "table")],
    )
    out = {}
    for name, graph in (("matmul", mm), ("gather", gather)):
        src = work / f"{name}-{k}x{n}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(src))
        for sym in (False, True):
            dst = work / f"{name}-{k}x{n}-{'sym' if sym else 'asym'}.onnx"
            if not dst.is_file():
                quantize_int4(src, dst, op_types=("MatMul", "Gather"), block_size=block, accuracy_level=level,
                              symmetric=sym)
            out[f"{name} {'sym' if sym else 'asym'}"] = dst
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="896x151936,2048x151936,896x4864", help="comma list of KxN weights")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per variant (median)")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--accuracy-level", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None, help="where the graphs are written (reused)")
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]

    import onnxruntime as ort

    from segzero_edge.runtime.providers import create_session

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-int4-head-"))
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, spin off, block {args.block_size}, "
          f"accuracy level {args.accuracy_level}, {args.repeats} calls per variant (taking turns), "
          f"load average before {load[0]:.1f}\n")
    print("| weight K×N | op | asym µs | sym µs | sym ÷ asym time | asym rel. error | sym rel. error |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(1)
    for k, n in shapes:
        print(f"  quantizing {k}x{n} ...", file=sys.stderr)
        graphs = _graphs(k, n, work, args.block_size, args.accuracy_level)
        sessions = {label: create_session(path, threads=args.threads, spin="off") for label, path in graphs.items()}
        x = rng.standard_normal((1, k)).astype(np.float32)
        ids = np.array([[int(rng.integers(n))]], np.int64)
        import onnx
        from onnx import numpy_helper

        weight = numpy_helper.to_array(onnx.load(str(work / f"matmul-{k}x{n}.onnx")).graph.initializer[0])
        refs = {"matmul": x @ weight, "gather": weight.T[ids]}
        feeds = {"matmul": {"x": x}, "gather": {"ids": ids}}
        times: dict[str, list[float]] = {label: [] for label in sessions}
        for label, s in sessions.items():  # warm-up (pre-packing, arenas)
            s.run(None, feeds[label.split()[0]])
        for _ in range(args.repeats):
            for label, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds[label.split()[0]])
                times[label].append((time.perf_counter() - start) * 1e6)
        for op in ("matmul", "gather"):
            a, b = statistics.median(times[f"{op} asym"]), statistics.median(times[f"{op} sym"])
            errs = []
            for sym in ("asym", "sym"):
                got = sessions[f"{op} {sym}"].run(None, feeds[op])[0].reshape(refs[op].shape)
                if op == "gather":  # one row says little: compare the whole dequantized table
                    all_ids = np.arange(n, dtype=np.int64)[None]
                    got = sessions[f"{op} {sym}"].run(None, {"ids": all_ids})[0][0]
                    ref = weight.T
                else:
                    ref = refs[op]
                errs.append(float(np.sqrt(np.mean((got - ref) ** 2)) / np.sqrt(np.mean(ref**2))))
            name = "MatMulNBits (lm_head)" if op == "matmul" else "GatherBlockQuantized (1 row)"
            print(f"| {k}×{n} | {name} | {a:.1f} | {b:.1f} | {b / a:.3f} | {errs[0]:.4f} | {errs[1]:.4f} |")
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
