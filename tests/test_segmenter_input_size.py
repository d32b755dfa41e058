"""The segmenter graphs at an encoder input other than SAM2's 1024 (the shipped tiny segmenter
runs at 384²): export, manifest metadata and runtime follow the model config's size, and the
ONNX graphs stay at fp32 parity with the PyTorch reference there."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from segzero_edge.graphs import segmenter_io as io  # noqa: E402
from segzero_edge.runtime.segmenter import check_meta  # noqa: E402

SIZE = 256


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from segzero_edge.export.segmenter import export_segmenter
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.runtime.segmenter import OrtSegmenter
    from segzero_edge.testing.tiny import build_tiny_segmenter

    root = tmp_path_factory.mktemp("seg256")
    reference = TorchSegmenter.from_pretrained(build_tiny_segmenter(root / "model", seed=3, image_size=SIZE))
    meta = export_segmenter(reference.model, root / "graphs", precision="fp32")
    return reference, OrtSegmenter.from_dir(root / "graphs", meta=meta), meta


def test_metadata_follows_the_model_input_size(pair):
    reference, runtime, meta = pair
    assert reference.image_size == SIZE
    assert (meta["image_size"], meta["low_res_size"]) == (SIZE, SIZE // 4)
    embedding = runtime.encode(np.zeros((90, 120, 3), np.uint8))
    logits, scores = runtime.decode_low_res(embedding, (10, 10, 60, 50), [(30, 30), (40, 35)])
    assert logits.shape == (3, SIZE // 4, SIZE // 4) and scores.shape == (3,)


def test_fp32_parity_at_256(pair):
    from segzero_edge.export.verify_segmenter import THRESHOLDS, verify_segmenter

    reference, runtime, _ = pair
    report = verify_segmenter(reference, runtime, n_images=3, n_prompts=3, seed=1)
    assert report.max_abs_logit_diff <= 1e-3 and report.min_mask_iou >= 0.99, report.summary()
    assert report.passed(THRESHOLDS["fp32"])


@pytest.mark.parametrize(
    ("image_size", "low_res", "message"),
    [(1000, 250, "multiple of 32"), (384, 128, "image_size / 4 = 96"), (32, 8, ">= 64"), ("384", 96, "multiple of 32")],
)
def test_metadata_with_unusable_sizes_is_refused(image_size, low_res, message):
    meta = {**io.default_meta(384), "image_size": image_size, "low_res_size": low_res}
    with pytest.raises(ValueError, match=message):
        check_meta(meta)
