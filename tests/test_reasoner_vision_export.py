"""vision.onnx: host indices vs transformers, ORT parity with `model.visual`, fp16/int8 agreement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from segzero_edge.graphs import reasoner_vision_io as io  # noqa: E402
from segzero_edge.graphs.qwen_vision_index import (  # noqa: E402
    VisionGeometry,
    cu_seqlens,
    padded_windows,
    reverse_index,
    rotary_cos_sin,
    rotary_inv_freq,
    vision_position_ids,
    window_index,
)

GRIDS = [[[1, 60, 60]], [[1, 4, 6]], [[1, 16, 16]], [[1, 34, 46]], [[1, 34, 46], [1, 8, 8]], [[2, 12, 20]]]


# ---- host-side indices ------------------------------------------------------------------
@pytest.mark.parametrize("grid", GRIDS)
def test_indices_match_transformers(grid):
    from transformers import vision_utils as vu

    g = torch.tensor(grid)
    np.testing.assert_array_equal(vision_position_ids(np.array(grid)), vu.get_vision_position_ids(g, 2).numpy())
    ref_index, ref_cu = vu.get_vision_window_index(g, spatial_merge_size=2, window_size=112, patch_size=14)
    ours_index, ours_cu = window_index(np.array(grid))
    np.testing.assert_array_equal(ours_index, ref_index.numpy())
    np.testing.assert_array_equal(ours_cu, ref_cu.numpy())
    np.testing.assert_array_equal(reverse_index(ours_index), torch.argsort(ref_index).numpy())
    np.testing.assert_array_equal(cu_seqlens(np.array(grid)), vu.get_vision_cu_seqlens(g).numpy())


@pytest.mark.parametrize("grid", GRIDS)
def test_padded_windows_are_hf_windows(grid):
    geometry = VisionGeometry()
    win = padded_windows(np.array(grid), geometry)
    w_idx, cu = window_index(np.array(grid), geometry)
    order = (w_idx[:, None] * 4 + np.arange(4)).reshape(-1)
    assert win.gather.shape == (len(cu) - 1, geometry.window_len) == win.valid.shape
    for w in range(len(cu) - 1):  # slot contents = the HF segment, in order, then padding
        members = win.gather[w][win.valid[w]]
        np.testing.assert_array_equal(members, order[cu[w]: cu[w + 1]])
        assert win.valid[w].sum() >= 1 and not win.valid[w][win.valid[w].sum():].any()
    np.testing.assert_array_equal(win.gather.reshape(-1)[win.scatter], np.arange(order.size))


@pytest.mark.parametrize("head_dim", [16, 80])
def test_rotary_tables_match_transformers(head_dim):
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionRotaryEmbedding

    cfg = Qwen2_5_VLConfig(vision_config={"hidden_size": head_dim * 4, "num_heads": 4}).vision_config
    rotary = Qwen2_5_VLVisionRotaryEmbedding(cfg)
    np.testing.assert_array_equal(rotary_inv_freq(head_dim), rotary.inv_freq.numpy())
    pos = vision_position_ids(np.array([[1, 60, 60]]))
    cos, sin = rotary(torch.zeros(1), torch.from_numpy(pos))
    ours_cos, ours_sin = rotary_cos_sin(pos, head_dim)
    assert np.abs(ours_cos - cos.numpy()).max() <= 1e-6 and np.abs(ours_sin - sin.numpy()).max() <= 1e-6


# ---- export ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tiny_models):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models.reasoner, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def graphs(model, tmp_path_factory):
    """fp32 exported once (840 grid as the example), fp16/int8 converted from it."""
    from segzero_edge.export.reasoner_vision import convert_vision, export_vision

    root = tmp_path_factory.mktemp("vision")
    fp32 = export_vision(model, root / "vision.onnx")
    return {
        "fp32": fp32,
        "fp16": convert_vision(fp32, root / "vision_fp16.onnx", "fp16"),
        "int8": convert_vision(fp32, root / "vision_int8.onnx", "int8"),
    }


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _reference(model, tiny_models, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """transformers end to end: PIL image processor + model.visual."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessorPil

    proc = Qwen2VLImageProcessorPil.from_pretrained(tiny_models.reasoner)
    inputs = proc(images=Image.fromarray(image), return_tensors="pt")
    with torch.no_grad():
        out = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    return out.pooler_output[0].numpy(), inputs["image_grid_thw"].numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_graph_io_and_metadata(graphs, model, tiny_models):
    import onnx

    from segzero_edge.export.reasoner_vision import read_vision_meta
    from segzero_edge.graphs.qwen_preprocess import QwenImageConfig

    for precision, path in graphs.items():
        graph = onnx.load(str(path)).graph
        assert tuple(i.name for i in graph.input) == io.VISION_INPUTS
        assert tuple(o.name for o in graph.output) == io.VISION_OUTPUTS
        assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "n_merged"
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp16 keeps fp32 I/O
        meta = read_vision_meta(path)
        assert meta.precision == precision
        assert meta.head_dim == model.config.vision_config.hidden_size // model.config.vision_config.num_heads
        assert meta.out_hidden == model.config.vision_config.out_hidden_size
        assert meta.image == QwenImageConfig.from_pretrained(tiny_models.reasoner)  # the checkpoint's own
    fp16_types = {i.data_type for i in onnx.load(str(graphs["fp16"])).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in fp16_types
    int8_ops = {n.op_type for n in onnx.load(str(graphs["int8"])).graph.node}
    assert "MatMulInteger" in int8_ops or "DynamicQuantizeMatMul" in int8_ops


@pytest.mark.parametrize("hw", [(840, 840), (476, 644), (448, 448)])
def test_fp32_parity_with_transformers(graphs, model, tiny_models, hw):
    """840 -> 60x60 (border windows padded); 476x644 -> 34x46; 448 -> 32x32 (windows divide evenly)."""
    from segzero_edge.runtime.vision import OrtVision

    image = _image(*hw)
    vision = OrtVision.from_file(graphs["fp32"], provider="cpu")
    features, grid = vision.features(image)
    ref, ref_grid = _reference(model, tiny_models, image)
    np.testing.assert_array_equal(grid, ref_grid)
    assert features.dtype == np.float32 and features.shape == ref.shape
    diff = np.abs(features - ref).max()
    assert diff <= 1e-4, f"max abs diff {diff:.3e} at {hw}"


@pytest.mark.parametrize(("precision", "min_cosine"), [("fp16", 0.9999), ("int8", 0.98)])
def test_quantized_agreement(graphs, precision, min_cosine):
    from segzero_edge.runtime.vision import OrtVision

    image = _image(840, 840, seed=1)
    ref, _ = OrtVision.from_file(graphs["fp32"]).features(image)
    got, _ = OrtVision.from_file(graphs[precision]).features(image)
    cos = _cosine(got, ref)
    print(f"{precision}: cosine {cos:.6f}, max abs diff {np.abs(got - ref).max():.4f} (|ref| max {np.abs(ref).max():.2f})")
    assert cos >= min_cosine


def test_external_data_round_trip(graphs, tmp_path):
    """The >2 GB code path (weights in <name>.onnx.data), forced on the tiny graph."""
    from segzero_edge.export.onnx_io import onnx_bytes
    from segzero_edge.export.precision import convert_fp16
    from segzero_edge.export.reasoner_vision import vision_inputs
    from segzero_edge.runtime.vision import OrtVision

    dst = convert_fp16(graphs["fp32"], tmp_path / "v.onnx", keep_fp32_ops=("Softmax",), external_data=True)
    assert (tmp_path / "v.onnx.data").is_file() and onnx_bytes(dst) > dst.stat().st_size
    ref = ort.InferenceSession(str(graphs["fp32"]), providers=["CPUExecutionProvider"])
    meta = OrtVision.from_file(graphs["fp32"]).meta
    feeds = vision_inputs(np.array([[1, 8, 12]]), meta)
    got = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert _cosine(got, ref.run(None, feeds)[0]) > 0.9999


def test_errors(graphs, tmp_path):
    import onnx

    from segzero_edge.export.reasoner_vision import convert_vision, export_vision
    from segzero_edge.graphs.reasoner_vision_io import grid_inputs
    from segzero_edge.runtime.vision import OrtVision

    vision = OrtVision.from_file(graphs["fp32"])
    with pytest.raises(ValueError, match="one still image"):
        grid_inputs(np.array([[2, 8, 8]]), vision.meta)
    with pytest.raises(ValueError, match="RGB uint8"):
        vision.features(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match="convert from the fp32"):
        convert_vision(graphs["int8"], tmp_path / "x.onnx", "fp16")
    with pytest.raises(ValueError, match="precision"):
        export_vision(torch.nn.Module(), tmp_path / "x.onnx", precision="int4")
    bare = onnx.load(str(graphs["fp32"]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ValueError, match="metadata"):
        OrtVision(tmp_path / "bare.onnx")
    # an explicit meta (the manifest's dict) serves a graph without one, and must agree with one that has it
    assert OrtVision(tmp_path / "bare.onnx", meta=vision.meta.to_dict()).meta == vision.meta
    other = dict(vision.meta.to_dict(), precision="int8")
    with pytest.raises(ValueError, match="differs from the graph"):
        OrtVision(graphs["fp32"], meta=other)
    with pytest.raises(ValueError, match="provider"):
        OrtVision(graphs["fp32"], provider="npu")
