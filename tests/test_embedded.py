"""The shipped embedded default: engines that load, verify against their manifest, and
segment a slice of the synthetic test split (regenerated from its seeds) at a stated gIoU.

The thresholds come from segzero_edge/assets/expected.json, written by recipes/embedded/ship.py:
the gIoU of the shipped engines on the first `test_slice` test rows, measured when they were
shipped, less a margin for other CPUs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import segzero_edge
from segzero_edge.manifest import EngineError, read_manifest

EXPECTED = json.loads((Path(segzero_edge.__file__).parent / "assets" / "expected.json").read_text())
SLICE = EXPECTED["test_slice"]  # first rows of the test split (base seed 0, 512 px), as `segzero-edge synth` writes them


@pytest.fixture(scope="module")
def engines() -> Path:
    return segzero_edge.default_engines()


@pytest.fixture(scope="module")
def pipeline(engines):
    from segzero_edge.runtime import ReasoningSegmenter

    return ReasoningSegmenter.from_dir(engines, provider="cpu", max_new_tokens=EXPECTED["max_new_tokens"])


def test_default_engines_is_the_shipped_dir(engines):
    assert engines == Path(segzero_edge.__file__).resolve().parent / "assets" / "engines"
    manifest = read_manifest(engines)  # verifies every file's sha256 and the format version
    assert set(manifest.components) >= {"reasoner", "segmenter"}
    assert manifest.component("reasoner")["precision"] == EXPECTED["reasoner_precision"]
    assert manifest.component("segmenter")["precision"] == EXPECTED["segmenter_precision"]
    # the embedded reasoner sees a small image (max_pixels) but answers in Seg-Zero's 840 space
    pre = manifest.component("reasoner")["preprocess"]
    assert (pre["resize"], pre["max_pixels"]) == (840, EXPECTED["max_pixels"])


def test_shipped_engines_reject_an_altered_file(engines, tmp_path):
    copy = tmp_path / "engines"
    shutil.copytree(engines, copy)
    graph = copy / "segmenter" / "decoder.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(EngineError):
        read_manifest(copy)


def test_shipped_engines_reach_stated_giou_on_test_slice(pipeline):
    from segzero_edge.answer import AnswerError, parse_answer
    from segzero_edge.geometry import box_iou
    from segzero_edge.metrics import IoUMeter
    from segzero_edge.synthetic import generate_split

    meter = IoUMeter()
    parsed = 0
    box_ious = []
    for sample in generate_split("test", SLICE, seed=0, size=512):
        result = pipeline.segment(sample.scene.image, sample.query.text)
        parsed += result.ok
        meter.update(result.mask if result.ok else None, sample.mask)
        if result.ok:
            assert result.mask.shape == sample.mask.shape and result.mask.dtype == np.bool_
        try:  # the reasoner's own box in 840 space against the ground truth's
            box_ious.append(box_iou(parse_answer(result.answer_text).bbox, sample.bbox))
        except AnswerError:
            box_ious.append(0.0)
    assert meter.count == SLICE
    assert parsed >= EXPECTED["min_parsed"], f"only {parsed}/{SLICE} answers parsed"
    assert float(np.mean(box_ious)) >= EXPECTED["min_box_iou"], (
        f"reasoner box IoU {np.mean(box_ious):.4f} is below the stated {EXPECTED['min_box_iou']} "
        f"(measured at export: {EXPECTED['measured_box_iou']})"
    )
    assert meter.giou >= EXPECTED["min_giou"], (
        f"gIoU {meter.giou:.4f} on the first {SLICE} test rows is below the stated {EXPECTED['min_giou']} "
        f"(measured at export: {EXPECTED['measured_giou']})"
    )


def test_shipped_segmenter_with_ground_truth_prompts(pipeline):
    """The segmenter on its own: Seg-Zero's box + 2 points from the ground truth, the
    highest-scored of its 3 masks (as the pipeline picks), on the same test slice."""
    from segzero_edge.answer import Answer
    from segzero_edge.metrics import IoUMeter
    from segzero_edge.synthetic import generate_split

    meter = IoUMeter()
    for sample in generate_split("test", SLICE, seed=0, size=512):
        h, w = sample.mask.shape
        prompt = Answer(bbox=sample.bbox, points=sample.points).rescale(w, h)
        masks, scores = pipeline.segmenter.decode(pipeline.segmenter.encode(sample.scene.image),
                                                  prompt.bbox, prompt.points)
        meter.update(masks[int(np.argmax(scores))], sample.mask)
    assert meter.giou >= EXPECTED["min_segmenter_giou"], (
        f"segmenter gIoU {meter.giou:.4f} with ground-truth prompts is below the stated "
        f"{EXPECTED['min_segmenter_giou']} (measured at export: {EXPECTED['measured_segmenter_giou']})"
    )
