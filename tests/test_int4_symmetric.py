"""`quantize_int4(symmetric=)`: all, none, or only the named nodes quantized without zero points."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

K, N = 64, 96


def _graph(path):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((K, K)).astype(np.float32)
    w2 = rng.standard_normal((K, N)).astype(np.float32)
    table = rng.standard_normal((N, K)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
            helper.make_node("MatMul", ["e", "w1"], ["h"], name="layer"),
            helper.make_node("MatMul", ["h", "w2"], ["y"], name="final/lm_head"),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, N])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (w2, "w2"), (table, "table"))],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    return path


def _zero_points(path) -> dict[str, bool]:
    """node name -> whether the quantized node reads zero points."""
    out = {}
    for node in onnx.load(str(path)).graph.node:
        if node.op_type == "MatMulNBits":
            out[node.name.removesuffix("_Q4")] = len(node.input) > 3 and node.input[3] != ""
        elif node.op_type == "GatherBlockQuantized":
            out[node.name.removesuffix("_Q4")] = len(node.input) > 3 and node.input[3] != ""
    return out


@pytest.mark.parametrize(
    ("symmetric", "expected"),
    [
        (False, {"embed": True, "layer": True, "final/lm_head": True}),
        (True, {"embed": False, "layer": False, "final/lm_head": False}),
        (("final/lm_head", "not/in/graph"), {"embed": True, "layer": True, "final/lm_head": False}),
        (("embed", "final/lm_head"), {"embed": False, "layer": True, "final/lm_head": False}),
    ],
)
def test_symmetric_selects_nodes_and_stays_close_to_fp32(tmp_path, symmetric, expected):
    from segzero_edge.export.precision import quantize_int4
    from segzero_edge.runtime.providers import create_session

    src = _graph(tmp_path / "fp32.onnx")
    dst = quantize_int4(src, tmp_path / "int4.onnx", op_types=("MatMul", "Gather"), block_size=16, symmetric=symmetric)
    assert _zero_points(dst) == expected  # every weight quantized, each the asked way
    assert "MatMul" not in {n.op_type for n in onnx.load(str(dst)).graph.node}
    ids = np.array([[0, 5, N - 1]], np.int64)
    ref = create_session(src).run(None, {"ids": ids})[0]
    got = create_session(dst).run(None, {"ids": ids})[0]
    rel = np.sqrt(np.mean((got - ref) ** 2) / np.mean(ref**2))
    assert rel < 0.2, rel  # int4 with 16-element blocks on Gaussian weights: ~0.1 here
