"""Micro-benchmark: can a fused onnxruntime attention kernel speed up SAM2's encoder on the CPU?

    python bench/attention_kernels.py --threads 2 --repeats 5

Times one global-attention block of hiera-t at 1024² (4 heads, 4096 tokens, head dim 96) in
three forms, side by side in one process (median of --repeats after a warm-up):

- the pattern our encoder graph and samexporter's both hold after onnxruntime's optimizer:
  FusedMatMul(q, kᵀ, alpha=scale) → Softmax → MatMul;
- com.microsoft MultiHeadAttention (query as [B, S, N·D], key/value as [B, N, S, D]);
- ONNX Attention (opset 23).

Prints each time, its speed relative to the first and the max difference of its output.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def _time(model, feeds: dict[str, np.ndarray], threads: int, repeats: int) -> tuple[float, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    out = session.run(None, feeds)[0]  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = session.run(None, feeds)[0]
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def graphs(batch: int, heads: int, tokens: int, dim: int) -> dict[str, object]:
    scale = dim**-0.5
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, heads, tokens, dim]) for n in "qkv"]
    output = [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)]
    ms = [helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    unfused = helper.make_graph(
        [
            helper.make_node("FusedMatMul", ["q", "k"], ["s"], domain="com.microsoft", transB=1, alpha=scale),
            helper.make_node("Softmax", ["s"], ["p"], axis=-1),
            helper.make_node("MatMul", ["p", "v"], ["o"]),
        ],
        "unfused", inputs, output,
    )
    mha = helper.make_graph(
        [
            helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["qt", "bsd"], ["q3"]),
            helper.make_node("MultiHeadAttention", ["q3", "k", "v"], ["o3"], domain="com.microsoft",
                             num_heads=heads, scale=scale),
            helper.make_node("Reshape", ["o3", "bsnd"], ["o4"]),
            helper.make_node("Transpose", ["o4"], ["o"], perm=[0, 2, 1, 3]),
        ],
        "mha", inputs, output,
        initializer=[
            helper.make_tensor("bsd", TensorProto.INT64, [3], [batch, tokens, heads * dim]),
            helper.make_tensor("bsnd", TensorProto.INT64, [4], [batch, tokens, heads, dim]),
        ],
    )
    attention = helper.make_graph(
        [helper.make_node("Attention", ["q", "k", "v"], ["o"], scale=scale)], "attention23", inputs, output
    )
    return {
        "FusedMatMul+Softmax+MatMul (the encoder's)": helper.make_model(unfused, opset_imports=ms),
        "com.microsoft MultiHeadAttention": helper.make_model(mha, opset_imports=ms),
        "ONNX Attention-23": helper.make_model(attention, opset_imports=[helper.make_opsetid("", 23)]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=4096, help="hiera-t's global blocks at 1024²: 64×64")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=96)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (1, args.heads, args.tokens, args.dim)
    feeds = {n: rng.standard_normal(shape).astype(np.float32) for n in "qkv"}
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, q/k/v {list(shape)}, medians of {args.repeats}")
    print("| form | ms | speed vs the encoder's | max diff |")
    print("|---|---:|---:|---:|")
    base_ms, base_out = None, None
    for label, model in graphs(*shape).items():
        try:
            ms, out = _time(model, feeds, args.threads, args.repeats)
        except Exception as exc:  # an onnxruntime without the kernel is a result too
            print(f"| {label} | — | — | not run: {str(exc).splitlines()[0][:120]} |")
            continue
        if base_ms is None:
            base_ms, base_out = ms, out
        print(f"| {label} | {ms:.1f} | {base_ms / ms:.2f}× | {float(np.abs(out - base_out).max()):.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
