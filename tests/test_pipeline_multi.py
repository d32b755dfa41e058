"""The multi-object chain: one SAM2 call per object (its box + its one point), the best mask
each, the union as the result; on scripted back ends, then on the tiny torch and ONNX
segmenters side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import BoxSegmenter, ScriptedReasoner, answer_text

from segzero_edge.pipeline import ReasoningPipeline


def multi_text(objects, think: str = "two of them") -> str:
    return f"<think>{think}</think><answer>{json.dumps([{'bbox_2d': b, 'point_2d': p} for b, p in objects])}</answer>"


IMAGE = np.zeros((420, 840, 3), np.uint8)  # x factor 1, y factor 0.5


def _pipe(text: str, **kwargs) -> tuple[ReasoningPipeline, BoxSegmenter]:
    seg = BoxSegmenter()
    return ReasoningPipeline(ScriptedReasoner(text), seg, answer_format="multi", **kwargs), seg


def test_each_object_gets_its_box_and_one_point_and_the_mask_is_the_union():
    pipe, seg = _pipe(multi_text([([10, 20, 100, 120], [50, 60]), ([300, 400, 500, 600], [400, 500])]))
    r = pipe.segment(IMAGE, "all the red shapes")
    assert r.ok and r.error is None and r.thinking == "two of them"
    # int(v * f + 0.5): y 20*0.5 → 10, 120*0.5 → 60, 60*0.5 → 30, 400*0.5 → 200, 600*0.5 → 300
    assert seg.prompts == [((10, 10, 100, 60), ((50, 30),)), ((300, 200, 500, 300), ((400, 250),))]
    assert [o.bbox for o in r.objects] == [(10, 10, 100, 60), (300, 200, 500, 300)]
    assert [o.points for o in r.objects] == [((50, 30),), ((400, 250),)]
    assert all(o.score == pytest.approx(0.9) for o in r.objects)  # the best of [0.5, 0.9, 0.1]
    expected = np.zeros((420, 840), bool)
    expected[12:59, 12:99] = True  # BoxSegmenter's best mask: the box shrunk by 2 px
    expected[202:299, 302:499] = True
    assert np.array_equal(r.mask, expected)
    assert np.array_equal(r.objects[0].mask | r.objects[1].mask, r.mask)
    assert r.bbox == (10, 10, 500, 300) and r.points == ((50, 30), (400, 250)) and r.score is None
    assert seg.encode_calls == 1
    assert {"segmenter_encode_ms", "segmenter_decode_ms", "total_ms"} <= set(r.timings)


def test_an_empty_list_is_an_answer_with_no_object():
    pipe, seg = _pipe(multi_text([], think="nothing is red"))
    r = pipe.segment(IMAGE, "all the red shapes")
    assert r.ok and r.objects == [] and not r.mask.any() and r.mask.shape == (420, 840)
    assert r.bbox is None and r.points is None
    assert seg.encode_calls == 0 and seg.prompts == []  # nothing to segment, nothing encoded


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<think>x</think>", "no <answer>"),
        ("<answer>[{\"bbox_2d\": [1, 2, 3]}]</answer>", "list of 4"),
        (answer_text([1, 2, 3, 4], [1, 2], [3, 4]), "must be a list"),  # a single-object answer
    ],
)
def test_failures_are_results_with_the_reason(text, reason):
    pipe, seg = _pipe(text)
    r = pipe.segment(IMAGE, "q")
    assert not r.ok and reason in r.error and r.error.startswith("unparseable answer")
    assert r.mask is None and r.objects == [] and seg.prompts == []


def test_boxes_are_clipped_and_degenerate_ones_flagged():
    pipe, seg = _pipe(multi_text([([-50, 10, 2000, 900], [900, 5]), ([100, 100, 100, 300], [100, 200])]))
    r = pipe.segment(IMAGE, "q")
    assert seg.prompts[0] == ((0, 5, 839, 419), ((839, 3),))
    assert r.ok and len(r.warnings) == 1 and r.warnings[0].startswith("object 1: degenerate box")


def test_many_queries_encode_once():
    seg = BoxSegmenter()
    reasoner = ScriptedReasoner({"a": multi_text([([1, 2, 30, 40], [5, 6])]), "b": multi_text([([100, 100, 200, 200], [150, 150])])})
    pipe = ReasoningPipeline(reasoner, seg, answer_format="multi")
    results = pipe.segment_many(IMAGE, ["a", "b", ""])
    assert [r.ok for r in results] == [True, True, False]
    assert seg.encode_calls == 1 and reasoner.generate_calls == 2
    assert results[1].timings["segmenter_encode_ms"] == 0.0


def test_single_is_the_default_and_unchanged():
    text = answer_text([100, 100, 199, 199], [150, 150], [160, 160])
    seg = BoxSegmenter()
    pipe = ReasoningPipeline(ScriptedReasoner(text), seg)
    r = pipe.segment(np.zeros((840, 840, 3), np.uint8), "the square")
    assert pipe.answer_format == "single" and r.ok
    assert seg.prompts == [((100, 100, 199, 199), ((150, 150), (160, 160)))]
    assert len(r.objects) == 1 and r.objects[0].mask is r.mask and r.objects[0].points == r.points


class DeclaringReasoner(ScriptedReasoner):
    answer_format = "multi"


def test_the_reasoner_declares_the_format():
    pipe = ReasoningPipeline(DeclaringReasoner(multi_text([])), BoxSegmenter())
    assert pipe.answer_format == "multi"
    with pytest.raises(ValueError, match="renders the 'multi' prompt"):
        ReasoningPipeline(DeclaringReasoner(""), BoxSegmenter(), answer_format="single")
    with pytest.raises(ValueError, match="unknown answer format"):
        ReasoningPipeline(ScriptedReasoner(""), BoxSegmenter(), answer_format="both")


def test_torch_and_onnx_segmenters_give_the_same_union():
    """Both back ends behind the same pipeline code: same objects, same union (fp32 graphs)."""
    from segmenter_helpers import image, ort_segmenter, torch_segmenter

    pixels = image(240, 320, seed=5)
    text = multi_text([([80, 100, 400, 500], [240, 300]), ([500, 200, 800, 700], [650, 450]), ([0, 0, 60, 90], [30, 40])])
    results = []
    for segmenter in (torch_segmenter(), ort_segmenter("fp32")):
        r = ReasoningPipeline(ScriptedReasoner(text), segmenter, answer_format="multi").segment(pixels, "q")
        assert r.ok and len(r.objects) == 3 and r.mask.shape == (240, 320)
        assert np.array_equal(np.logical_or.reduce([o.mask for o in r.objects]), r.mask)
        results.append(r)
    a, b = results
    assert [o.bbox for o in a.objects] == [o.bbox for o in b.objects]
    inter, union = (a.mask & b.mask).sum(), (a.mask | b.mask).sum()
    assert union == 0 or inter / union >= 0.99
    assert [o.score for o in a.objects] == pytest.approx([o.score for o in b.objects], abs=1e-3)


def test_torch_reasoner_renders_the_multi_prompt(tiny_models):
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.prompts import user_prompt

    with pytest.raises(ValueError, match="unknown answer format"):
        TorchReasoner.from_pretrained(tiny_models.reasoner, answer_format="list")
    reasoner = TorchReasoner.from_pretrained(tiny_models.reasoner, answer_format="multi")
    encoded = reasoner.encode_image(np.full((64, 96, 3), 90, np.uint8))
    ids = reasoner.prompt_inputs(encoded, "All the red shapes.")["input_ids"][0].tolist()
    text = reasoner.processor.tokenizer.decode(ids, skip_special_tokens=False)
    # inference (infer_multi_object.py) puts the text right after the image, no newline
    assert "<|vision_end|>" + user_prompt("All the red shapes.", "multi") + "<|im_end|>" in text
    assert "You are a helpful assistant." in text
    assert ReasoningPipeline(reasoner, BoxSegmenter()).answer_format == "multi"
