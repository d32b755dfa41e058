from __future__ import annotations

import io

import numpy as np
import pytest
from fakes import BoxSegmenter, ScriptedReasoner, answer_text
from PIL import Image
from protocols import assert_reasoner, assert_segmenter

from segzero_edge.images import ImageError
from segzero_edge.pipeline import (
    BYTES_PER_TOKEN,
    MAX_QUERY_TOKENS,
    Generation,
    Reasoner,
    ReasoningPipeline,
    Segmenter,
)


def _pipeline(text) -> tuple[ReasoningPipeline, ScriptedReasoner, BoxSegmenter]:
    reasoner, segmenter = ScriptedReasoner(text), BoxSegmenter()
    return ReasoningPipeline(reasoner, segmenter), reasoner, segmenter


def test_fakes_satisfy_the_protocols_as_the_pipeline_uses_them():
    image = np.zeros((60, 80, 3), np.uint8)
    assert_reasoner(ScriptedReasoner("x"), image)
    assert_segmenter(BoxSegmenter(), image, [10, 10, 50, 40], [[20, 20], [30, 30]])


class _NoQuery:
    def encode_image(self, image):
        return image

    def generate(self, encoded):
        return Generation("x")


class _TupleAnswer:
    def encode_image(self, image):
        return image

    def generate(self, encoded, query):
        return ("x", 0.0, 0.0, 1)


class _FlatMasks:
    def encode(self, image):
        return image.shape[:2]

    def decode(self, embedding, box, points):
        return np.zeros(embedding, bool), np.zeros(1, np.float32)


def test_protocol_checks_catch_what_isinstance_lets_through():
    """A runtime_checkable isinstance looks at method names only; the checks call the methods."""
    image = np.zeros((60, 80, 3), np.uint8)
    for bad in (_NoQuery(), _TupleAnswer()):
        assert isinstance(bad, Reasoner)
        with pytest.raises(AssertionError):
            assert_reasoner(bad, image)
    assert isinstance(_FlatMasks(), Segmenter)
    with pytest.raises(AssertionError):
        assert_segmenter(_FlatMasks(), image, [10, 10, 50, 40], [[20, 20]])


def test_chain_rescales_and_keeps_the_best_mask():
    text = answer_text([84, 168, 420, 630], [210, 252], [252, 420])
    pipe, _, seg = _pipeline(text)
    image = np.zeros((420, 1680, 3), np.uint8)  # W=1680 → x*2, H=420 → y*0.5
    r = pipe.segment(image, "The Knife.")
    assert r.ok and r.error is None
    assert r.bbox == (168, 84, 840, 315)
    assert r.points == ((420, 126), (504, 210))
    assert seg.prompts == [((168, 84, 840, 315), ((420, 126), (504, 210)))]
    expected = np.zeros((420, 1680), bool)
    expected[86:314, 170:839] = True  # the shrunk mask (index 1, score 0.9)
    assert r.mask.shape == (420, 1680) and np.array_equal(r.mask, expected)
    assert r.score == pytest.approx(0.9)
    assert r.thinking == "it is there" and r.answer_text == text
    for key in ("reasoner_prefill_ms", "reasoner_decode_ms", "tokens", "segmenter_encode_ms", "segmenter_decode_ms", "total_ms"):
        assert key in r.timings


def test_boxes_outside_the_image_are_clipped():
    pipe, _, seg = _pipeline(answer_text([-50, -50, 900, 900], [10, 10], [839, 839]))
    r = pipe.segment(np.zeros((100, 200, 3), np.uint8), "x")
    assert r.ok and r.bbox == (0, 0, 199, 99)
    assert seg.prompts[0][0] == (0, 0, 199, 99)  # the segmenter got the clipped box
    assert r.points == ((2, 1), (199, 99))  # 839*200/840 = 199.76 → 200 → clipped to 199


def test_swapped_corners_are_ordered_and_degenerate_box_warns():
    pipe, _, _ = _pipeline(answer_text([400, 400, 100, 100], [200, 200], [300, 300]))
    assert pipe.segment(np.zeros((840, 840, 3), np.uint8), "x").bbox == (100, 100, 400, 400)
    pipe, _, _ = _pipeline(answer_text([100, 100, 100, 300], [100, 150], [100, 250]))
    r = pipe.segment(np.zeros((840, 840, 3), np.uint8), "x")
    assert r.ok and r.warnings and "degenerate" in r.warnings[0]


@pytest.mark.parametrize("text", ["<think>no idea</think>", "<answer>{'bbox': [1,2,3,4]}</answer>", ""])
def test_unparseable_answer_is_not_ok(text):
    pipe, _, seg = _pipeline(text)
    r = pipe.segment(np.zeros((10, 10, 3), np.uint8), "x")
    assert not r.ok and r.error.startswith("unparseable answer") and r.mask is None
    assert seg.encode_calls == 0  # no segmenter work for a failed parse


@pytest.mark.parametrize("query,reason", [("", "empty"), (" . ", "empty"), ("x" * (MAX_QUERY_TOKENS * BYTES_PER_TOKEN + 1), "limit")])
def test_bad_queries_are_not_ok(query, reason):
    pipe, reasoner, _ = _pipeline(answer_text([1, 1, 5, 5], [2, 2], [3, 3]))
    r = pipe.segment(np.zeros((10, 10, 3), np.uint8), query)
    assert not r.ok and reason in r.error and reasoner.generate_calls == 0


def test_segment_many_encodes_once():
    pipe, reasoner, seg = _pipeline(answer_text([100, 100, 300, 300], [150, 150], [200, 200]))
    results = pipe.segment_many(np.zeros((840, 840, 3), np.uint8), ["a", "b", "c"])
    assert [r.ok for r in results] == [True, True, True]
    assert reasoner.encode_calls == 1 and seg.encode_calls == 1 and reasoner.generate_calls == 3
    assert results[1].timings["segmenter_encode_ms"] == 0.0
    with pytest.raises(TypeError):
        pipe.segment_many(np.zeros((8, 8, 3), np.uint8), "a")


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((50, 60), np.uint8),  # grayscale
        np.zeros((50, 60, 4), np.uint8),  # RGBA
        np.zeros((50, 60, 1), np.uint8),
        Image.new("L", (60, 50)),
        Image.new("RGBA", (60, 50)),
        Image.new("P", (60, 50)),
        np.zeros((1, 1, 3), np.uint8),  # tiny
    ],
)
def test_odd_images_are_converted(image):
    pipe, _, _ = _pipeline(answer_text([0, 0, 839, 839], [400, 400], [420, 420]))
    r = pipe.segment(image, "x")
    h, w = np.asarray(image).shape[:2]
    assert r.ok and r.mask.shape == (h, w)


def test_huge_image(tmp_path):
    pipe, _, _ = _pipeline(answer_text([0, 0, 839, 839], [400, 400], [420, 420]))
    r = pipe.segment(np.zeros((8000, 8000, 3), np.uint8), "x")
    assert r.ok and r.mask.shape == (8000, 8000) and r.bbox == (0, 0, 7990, 7990)


@pytest.mark.parametrize(
    "bad,match",
    [
        (b"not an image at all", "cannot decode"),
        ("/no/such/file.png", "not found"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((5, 5, 2), np.uint8), "shape"),
        (np.full((5, 5, 3), 2.0), r"\[0, 1\]"),
        (12, "unsupported image type"),
    ],
)
def test_bad_images_raise_image_error(bad, match):
    pipe, _, _ = _pipeline("x")
    with pytest.raises(ImageError, match=match):
        pipe.segment(bad, "x")


def test_truncated_png_bytes(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[:40])
    pipe, _, _ = _pipeline("x")
    with pytest.raises(ImageError, match="cannot decode"):
        pipe.segment(path, "x")


def test_result_json_is_serialisable():
    import json

    pipe, _, _ = _pipeline(answer_text([100, 100, 300, 300], [150, 150], [200, 200]))
    r = pipe.segment(np.zeros((840, 840, 3), np.uint8), "x")
    data = json.loads(json.dumps(r.to_json()))
    assert data["ok"] and data["mask_area"] == int(r.mask.sum()) and data["bbox"] == [100, 100, 300, 300]
