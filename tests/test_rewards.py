"""Table tests: each reward on hand-written outputs, with the value Seg-Zero gives."""

from __future__ import annotations

import pytest

from segzero_edge import rewards
from segzero_edge.rewards import (
    REWARDS,
    SEG_ZERO_COMPONENTS,
    Solution,
    answer_format,
    bbox_iou,
    bbox_l1,
    get_reward,
    parse_solution,
    points_l1,
    seg_zero,
    seg_zero_solution,
    think_format,
)

GT_BOX = [100, 100, 200, 200]
GT_POINTS = [[120, 130], [180, 170]]
GOOD_JSON = '{"bbox": [100,100,200,200], "points_1": [120,130], "points_2": [180,170]}'


def wrap(answer: str, think: str = "the knife is on the left") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


# (name, text, think, strict format, soft format, iou, l1, points)
CASES = [
    ("perfect", wrap(GOOD_JSON), 1, 1, 1, 1, 1, 1),
    ("whitespace between tags", f"<think>a</think>\n  <answer>{GOOD_JSON}</answer>", 1, 1, 1, 1, 1, 1),
    ("multiline think", f"<think>line one\nline two</think><answer>{GOOD_JSON}</answer>", 1, 1, 1, 1, 1, 1),
    ("text after answer", wrap(GOOD_JSON) + " done", 0, 1, 1, 1, 1, 1),
    ("text before think", "ok " + wrap(GOOD_JSON), 0, 1, 1, 1, 1, 1),
    ("no tags at all", GOOD_JSON, 0, 1, 1, 1, 1, 1),
    ("single quotes are not JSON", wrap(GOOD_JSON.replace('"', "'")), 1, 0, 0, 0, 0, 0),
    ("swapped corners", wrap('{"bbox": [200,200,100,100], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 0, 0, 0),
    ("float coordinates", wrap('{"bbox": [100.4,100.0,200.0,199.6], "points_1": [120.9,130.2], "points_2": [180.5,170.5]}'), 1, 1, 1, 1, 1, 1),
    ("string coordinates in bbox", wrap('{"bbox": ["100","100","200","200"], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 0, 0, 0),
    ("string coordinates in points", wrap('{"bbox": [100,100,200,200], "points_1": ["120","130"], "points_2": ["180","170"]}'), 1, 1, 1, 1, 1, 1),
    ("missing points_2", wrap('{"bbox": [100,100,200,200], "points_1": [120,130]}'), 1, 0, 0, 1, 1, 0),
    ("bbox of 3", wrap('{"bbox": [100,100,200], "points_1": [120,130], "points_2": [180,170]}'), 1, 0, 0, 0, 0, 0),
    ("bbox of 5", wrap('{"bbox": [100,100,200,200,1], "points_1": [120,130], "points_2": [180,170]}'), 1, 0, 0, 0, 0, 0),
    ("point of 3 passes points reward only", wrap('{"bbox": [100,100,200,200], "points_1": [120,130,5], "points_2": [180,170]}'), 1, 0, 0, 1, 1, 1),
    ("no JSON", wrap("none"), 1, 0, 0, 0, 0, 0),
    ("soft keys only", wrap('{"bbox_2d": [100,100,200,200], "points_a": [120,130], "points_b": [180,170]}'), 1, 0, 1, 0, 0, 0),
    ("brace in thinking comes first", "<think>{not json}</think>" + f"<answer>{GOOD_JSON}</answer>", 1, 0, 0, 0, 0, 0),
    ("nested object stops the match", wrap('{"bbox": {"a": 1}, "points_1": [1,2], "points_2": [3,4]}'), 1, 0, 0, 0, 0, 0),
    ("NaN coordinate", wrap('{"bbox": [NaN,100,200,200], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 0, 0, 0),
    ("point outside box", wrap('{"bbox": [100,100,200,200], "points_1": [99,130], "points_2": [180,170]}'), 1, 1, 1, 1, 1, 0),
    ("points on the box edge", wrap('{"bbox": [100,100,200,200], "points_1": [100,100], "points_2": [200,200]}'), 1, 1, 1, 1, 1, 1),
    ("bbox slightly off", wrap('{"bbox": [109,109,209,209], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 1, 1, 1),
    ("bbox l1 exactly 10", wrap('{"bbox": [110,110,210,210], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 1, 0, 1),
    ("boolean coordinates", wrap('{"bbox": [true,true,200,200], "points_1": [120,130], "points_2": [180,170]}'), 1, 1, 1, 0, 0, 1),
    ("null point", wrap('{"bbox": [100,100,200,200], "points_1": null, "points_2": [180,170]}'), 1, 0, 0, 1, 1, 0),
    ("empty", "", 0, 0, 0, 0, 0, 0),
    ("think only", "<think>hmm</think>", 0, 0, 0, 0, 0, 0),
    ("empty answer", "<think></think><answer></answer>", 1, 0, 0, 0, 0, 0),
]


@pytest.mark.parametrize("name,text,think,strict,soft,iou,l1,pts", CASES, ids=[c[0] for c in CASES])
def test_components(name, text, think, strict, soft, iou, l1, pts):
    assert think_format(text) == think
    assert answer_format(text, strict=True) == strict
    assert answer_format(text, strict=False) == soft
    assert bbox_iou(text, GT_BOX) == iou
    assert bbox_l1(text, GT_BOX) == l1
    assert points_l1(text, GT_POINTS) == pts
    assert seg_zero(text, GT_BOX, GT_POINTS) == think + strict + iou + l1 + pts
    assert seg_zero(text, GT_BOX, GT_POINTS, strict=False) == think + soft + iou + l1 + pts


def test_iou_threshold_is_strict():
    # inclusive areas: pred 100x100 = 10000, gt 100x200 = 20000, inter 10000 → IoU exactly 0.5
    text = wrap('{"bbox": [0,0,99,99], "points_1": [1,1], "points_2": [2,2]}')
    assert bbox_iou(text, [0, 0, 99, 199]) == 0
    assert bbox_iou(text, [0, 0, 99, 198]) == 1  # a hair above 0.5


def test_iou_zero_union_scores_zero():
    text = wrap('{"bbox": [5,5,4,4], "points_1": [1,1], "points_2": [2,2]}')
    assert bbox_iou(text, [5, 5, 4, 4]) == 0  # Seg-Zero divides by zero here


def test_iou_touching_boxes_have_no_intersection():
    # ix1 == ix2: Seg-Zero's strict `<` gives no intersection even though inclusive pixels touch
    text = wrap('{"bbox": [0,0,10,10], "points_1": [1,1], "points_2": [2,2]}')
    assert bbox_iou(text, [10, 0, 20, 10]) == 0


def test_points_distance_threshold_is_strict():
    text = wrap('{"bbox": [0,0,400,400], "points_1": [120,230], "points_2": [180,270]}')
    assert points_l1(text, [[120, 130], [180, 170]]) == 0  # both exactly 100 away
    assert points_l1(text, [[120, 131], [180, 171]]) == 1


def test_points_pairing_takes_the_better_order():
    text = wrap('{"bbox": [0,0,400,400], "points_1": [180,170], "points_2": [120,130]}')
    assert points_l1(text, GT_POINTS) == 1


def test_points_are_truncated_before_the_box_test():
    # int(200.9) == 200 lies inside a box ending at 200
    text = wrap('{"bbox": [100,100,200,200], "points_1": [200.9,130], "points_2": [180,170]}')
    assert points_l1(text, GT_POINTS) == 1


def test_missing_ground_truth_scores_zero():
    text = wrap(GOOD_JSON)
    assert bbox_iou(text, None) == 0
    assert bbox_l1(text, None) == 0
    assert points_l1(text, None) == 0
    assert seg_zero(text, None, None) == 2


@pytest.mark.parametrize("bad", [None, 42, b"<think>", ["<think>a</think>"]])
def test_non_string_inputs_score_zero(bad):
    for name in REWARDS:
        assert get_reward(name)(bad, GT_BOX, GT_POINTS) == 0


def test_parse_solution():
    sol = parse_solution("<box>(10,20),(30,40)</box><points>(12,22),(28,38)</points>")
    assert sol == Solution(bbox=(10, 20, 30, 40), points=((12, 22), (28, 38)))
    assert parse_solution("<points>(1,2),(3,4)</points>") == Solution(None, ((1, 2), (3, 4)))
    with pytest.raises(ValueError, match="not a Seg-Zero solution"):
        parse_solution("bbox: 1,2,3,4")


def test_seg_zero_solution_matches_explicit_ground_truth():
    solution = "<box>(100,100),(200,200)</box><points>(120,130),(180,170)</points>"
    for case in CASES:
        text = case[1]
        assert seg_zero_solution(text, solution) == seg_zero(text, GT_BOX, GT_POINTS)
    # a solution without a box: only format and points can score
    assert seg_zero_solution(wrap(GOOD_JSON), "<points>(120,130),(180,170)</points>") == 3
    assert seg_zero_solution(wrap(GOOD_JSON), "garbage") == 2


def test_registry():
    assert set(SEG_ZERO_COMPONENTS) <= set(REWARDS)
    text = wrap(GOOD_JSON)
    total = sum(get_reward(n)(text, GT_BOX, GT_POINTS) for n in SEG_ZERO_COMPONENTS)
    assert total == get_reward("seg_zero")(text, GT_BOX, GT_POINTS) == 5
    with pytest.raises(KeyError, match="known: "):
        get_reward("nope")
    assert rewards.IOU_THRESHOLD == 0.5
