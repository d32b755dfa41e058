"""Hypothesis fuzzing: thousands of model-like outputs through parsing and every reward.

Properties: no unexpected exception, every component is exactly 0 or 1, the total is the
sum, and parsing agrees with the format reward wherever the answer is well formed.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_edge.answer import AnswerError, parse_answer
from segzero_edge.rewards import REWARDS, SEG_ZERO_COMPONENTS, answer_format, seg_zero

KEYS = ["bbox", "points_1", "points_2", "bbox_2d", "points", "point_1", "BBox", "label", "Points_2"]
numbers = st.one_of(
    st.integers(-50, 900),
    st.floats(-50, 900, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), True, False, None]),
    st.text("0123456789.-x ", max_size=4),
)
coords = st.one_of(st.lists(numbers, min_size=0, max_size=6), numbers, st.dictionaries(st.sampled_from(["a", "0"]), numbers, max_size=2))
answers = st.dictionaries(st.sampled_from(KEYS), coords, max_size=5)


def _dump(obj: dict, quote: str) -> str:
    text = json.dumps(obj)  # NaN/Infinity come out as JSON5-ish literals json.loads accepts
    return text.replace('"', "'") if quote == "'" else text


@st.composite
def outputs(draw) -> str:
    body = _dump(draw(answers), draw(st.sampled_from(['"', '"', '"', "'"])))
    if draw(st.booleans()):  # truncate, as a model cut off at max_new_tokens would be
        body = body[: draw(st.integers(0, len(body)))]
    think = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
    parts = [
        draw(st.sampled_from(["", "<think>", "<think> "])) + think + draw(st.sampled_from(["</think>", "", "</think>\n"])),
        draw(st.sampled_from(["<answer>", "", "<answer> "])) + body + draw(st.sampled_from(["</answer>", "", "</answer> x"])),
    ]
    if draw(st.booleans()):
        parts.reverse()
    return "".join(parts)


GT_BOX = [100, 100, 300, 300]
GT_POINTS = [[150, 150], [250, 250]]


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs())
def test_parse_and_rewards_never_raise_unexpectedly(text):
    values = {name: fn(text, GT_BOX, GT_POINTS) for name, fn in REWARDS.items()}
    for name, value in values.items():
        assert isinstance(value, float)
        if name.startswith("seg_zero"):
            assert 0.0 <= value <= 5.0
        else:
            assert value in (0.0, 1.0), (name, value)
    assert values["seg_zero"] == sum(values[n] for n in SEG_ZERO_COMPONENTS)
    assert seg_zero(text, GT_BOX, GT_POINTS, strict=False) == values["seg_zero_soft"]
    if values["answer_format"]:
        assert answer_format(text, strict=False) == 1.0  # strict keys are also substring keys

    try:
        answer = parse_answer(text)
    except AnswerError:
        return
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in answer.bbox)
    assert all(isinstance(v, int) for p in answer.points for v in p)
    rescaled = answer.rescale(1920, 1080)
    assert len(rescaled.bbox) == 4 and len(rescaled.points) == 2


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.integers(0, 839), min_size=4, max_size=4),
    st.lists(st.integers(0, 839), min_size=4, max_size=4),
)
def test_well_formed_answers_parse_to_their_values(box, pts):
    text = "<think>t</think><answer>" + json.dumps({"bbox": box, "points_1": pts[:2], "points_2": pts[2:]}) + "</answer>"
    assert answer_format(text) == 1.0
    answer = parse_answer(text)
    assert list(answer.bbox) == box and [list(p) for p in answer.points] == [pts[:2], pts[2:]]
    # rescaling to 840 space is the identity
    assert answer.rescale(840, 840) == answer
    assert REWARDS["think_format"](text, None, None) == 1.0
    assert not math.isnan(seg_zero(text, box, [pts[:2], pts[2:]]))
