"""The torch-free segmenter runtime: providers, loading from an engine directory, the
`Segmenter` protocol in the pipeline, bad prompts, and parity on Seg-Zero's edge cases."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from fakes import ScriptedReasoner, answer_text
from protocols import assert_segmenter
from segmenter_helpers import exported, image, ort_segmenter, scratch, torch_segmenter

from segzero_edge.export.verify_segmenter import mask_iou
from segzero_edge.graphs import segmenter_io as io
from segzero_edge.manifest import EngineError, write_manifest
from segzero_edge.pipeline import ReasoningPipeline
from segzero_edge.runtime import providers
from segzero_edge.runtime.segmenter import OrtSegmenter, check_meta


def test_runtime_modules_are_torch_free():
    code = (
        "import sys\nimport segzero_edge.runtime.segmenter, segzero_edge.runtime.trt_segmenter, "
        "segzero_edge.graphs.sam_preprocess, segzero_edge.runtime.providers\n"
        "print(' '.join(m for m in ('torch', 'transformers', 'tensorrt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_provider_names_and_missing_providers():
    assert providers.execution_providers("cpu") == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="provider must be one of"):
        providers.execution_providers("gpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match=r"CUDAExecutionProvider.*segzero-edge\[gpu\]"):
            providers.execution_providers("cuda")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeError, match="TensorrtExecutionProvider"):
            providers.check_provider("tensorrt")
    with pytest.raises(ValueError, match="optimization"):
        providers.session_options(optimization="max")
    assert providers.PROVIDERS == ("cpu", "cuda", "tensorrt")
    key = "session.intra_op.allow_spinning"  # the runtime's default turns spinning off (see session_options)
    assert providers.DEFAULT_SPIN == "off"
    assert providers.session_options(spin="off").get_session_config_entry(key) == "0"
    assert providers.session_options(spin="on").get_session_config_entry(key) == "1"
    run_only = providers.session_options(spin="run")
    assert run_only.get_session_config_entry(key) == "1"
    assert run_only.get_session_config_entry("session.force_spinning_stop") == "1"
    with pytest.raises(ValueError, match=r"spin must be one of \('off', 'on', 'run'\), got 'sometimes'"):
        providers.session_options(spin="sometimes")
    with pytest.raises(ValueError, match=r"got True \(use 'on'\)"):
        providers.session_options(spin=True)


def _engine_dir(name: str):
    """An engine directory holding only the fp32 segmenter, with its manifest."""
    folder, meta = exported("fp32")
    root = scratch(name)
    shutil.copytree(folder, root / io.COMPONENT, dirs_exist_ok=True)
    write_manifest(root, sources={"segmenter": "tiny"}, components={"segmenter": meta})
    return root


def test_from_dir_reads_the_manifest_and_refuses_altered_files():
    root = _engine_dir("engine")
    img = image(100, 140, seed=5)
    ref = ort_segmenter("fp32")
    for path in (root, root / io.COMPONENT):
        seg = OrtSegmenter.from_dir(path)
        assert seg.precision == {"encoder": "fp32", "decoder": "fp32"}
        masks, scores = seg.decode(seg.encode(img), [10, 10, 90, 80], [[30, 30], [60, 50]])
        ref_masks, ref_scores = ref.decode(ref.encode(img), [10, 10, 90, 80], [[30, 30], [60, 50]])
        np.testing.assert_array_equal(masks, ref_masks)
        np.testing.assert_array_equal(scores, ref_scores)
    with open(root / io.COMPONENT / io.DECODER_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(EngineError, match="altered"):
        OrtSegmenter.from_dir(root)
    with pytest.raises(EngineError, match="not an engine directory"):
        OrtSegmenter.from_dir(scratch("empty"))


def test_wrong_graphs_and_metadata_are_refused():
    folder, meta = exported("fp32")
    with pytest.raises(ValueError, match="re-export"):
        OrtSegmenter(folder / io.DECODER_FILE, folder / io.DECODER_FILE)  # decoder passed as the encoder
    with pytest.raises(ValueError, match="image_size"):
        check_meta({**meta, "image_size": 512})
    with pytest.raises(ValueError, match="lacks"):
        check_meta({"image_size": 1024})
    with pytest.raises(FileNotFoundError):
        OrtSegmenter(folder / "missing.onnx", folder / io.DECODER_FILE)


def test_protocol_shapes_and_encode_once_decode_many():
    seg = ort_segmenter("fp32")
    img = image(333, 517, seed=6)
    assert_segmenter(seg, img, [20, 30, 400, 300], [[100, 100], [200, 250]])
    embedding = seg.encode(img)
    assert embedding.height == 333 and embedding.width == 517
    first = seg.decode(embedding, [20, 30, 400, 300], [[100, 100], [200, 250]])
    other = seg.decode(embedding, [200, 10, 500, 200], [[300, 50], [450, 150]])
    again = seg.decode(embedding, [20, 30, 400, 300], [[100, 100], [200, 250]])
    assert first[0].shape == (3, 333, 517) and first[0].dtype == bool and first[1].dtype == np.float32
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    seg.set_image(img)
    np.testing.assert_array_equal(seg.segment([20, 30, 400, 300], [[100, 100], [200, 250]])[0], first[0])


@pytest.mark.parametrize(
    ("box", "points"),
    [
        ([-40, -30, 700, 260], [[50, 40], [300, 200]]),  # box past every edge: clipped
        ([120, 60, 120, 200], [[120, 80], [120, 150]]),  # zero width: kept as a box
        ([50, 90, 260, 90], [[60, 90], [250, 90]]),  # zero height
        ([80, 80, 80, 80], [[80, 80], [80, 80]]),  # a point-sized box
        ([250, 180, 40, 20], [[100, 100], [150, 120]]),  # corners swapped: reordered
        ([30, 40, 200, 150], []),  # box only (transformers' input_boxes path, no points)
    ],
)
def test_edge_case_prompts_match_pytorch(box, points):
    ref, seg = torch_segmenter(), ort_segmenter("fp32")
    img = image(240, 320, seed=7)
    ref_logits, ref_scores = ref.decode_low_res(ref.encode(img), box, points)
    logits, scores = seg.decode_low_res(seg.encode(img), box, points)
    assert np.isfinite(logits).all()
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5 * np.abs(ref_logits).max())
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_bad_prompts_and_images_raise_value_error():
    seg = ort_segmenter("fp32")
    embedding = seg.encode(image(64, 64))
    with pytest.raises(ValueError, match="box must be 4 numbers"):
        seg.decode(embedding, [1, 2, 3], [[1, 1], [2, 2]])
    with pytest.raises(ValueError, match="points must be"):
        seg.decode(embedding, [1, 2, 30, 40], [[1, 1, 1]])
    with pytest.raises(ValueError, match="at most"):
        seg.decode(embedding, [1, 2, 30, 40], [[5, 5]] * 70)
    with pytest.raises(ValueError, match="SamEmbedding"):
        seg.decode(np.zeros((1, 32, 64, 64), np.float32), [1, 2, 30, 40], [[5, 5], [6, 6]])
    with pytest.raises(ValueError, match="image must be"):
        seg.encode(np.zeros((64, 64, 3), np.float64))


def test_pipeline_with_the_ort_segmenter_matches_pytorch():
    img = image(420, 560, seed=8)
    # 840-space answer → original pixels: bbox (100, 100, 500, 400), points (200, 200), (300, 300).
    text = answer_text([150, 200, 750, 800], [300, 400], [450, 600])
    results = {}
    for name, seg in (("torch", torch_segmenter()), ("ort", ort_segmenter("fp32"))):
        result = ReasoningPipeline(ScriptedReasoner(text), seg).segment(img, "the thing")
        assert result.ok, result.error
        assert result.bbox == (100, 100, 500, 400) and result.points == ((200, 200), (300, 300))
        assert result.mask.shape == (420, 560) and result.mask.dtype == bool
        results[name] = result
    assert results["ort"].score == pytest.approx(results["torch"].score, abs=1e-5)
    assert mask_iou(results["ort"].mask, results["torch"].mask) >= 0.999
