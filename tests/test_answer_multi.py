"""The multi-object answer format: its prompt (byte-exact to Seg-Zero's source) and its
parser (Seg-Zero's `extract_bbox_points_think`, with failures kept as failures)."""

from __future__ import annotations

import json

import pytest
import segzero_reference_multi as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_edge.answer import AnswerError, MultiAnswer, ObjectAnswer, parse_answer, parse_multi_answer
from segzero_edge.prompts import (
    ANSWER_FORMATS,
    SYSTEM_PROMPT,
    chat_messages,
    check_answer_format,
    evaluation_query,
    training_user_text,
    user_prompt,
)

# Copied from Seg-Zero's inference_scripts/infer_multi_object.py (the same text is in
# verl/utils/rl_dataset.py and evaluation_scripts/evaluation_visionreasoner.py).
QUESTION_TEMPLATE = \
    "Please find \"{Question}\" with bboxs and points." \
    "Compare the difference between object(s) and find the most closely matched object(s)." \
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags." \
    "Output the bbox(es) and point(s) inside the interested object(s) in JSON format." \
    "i.e., <think> thinking process here </think>" \
    "<answer>{Answer}</answer>"  # fmt: skip
ANSWER = "[{\"bbox_2d\": [10,100,200,210], \"point_2d\": [30,110]}, {\"bbox_2d\": [225,296,706,786], \"point_2d\": [302,410]}]"  # fmt: skip


@pytest.mark.parametrize("query", ["What can I have if I'm thirsty?", "All the RED shapes.", "..x..", "{a} and {b}"])
def test_multi_prompt_is_seg_zeros(query):
    expected = QUESTION_TEMPLATE.format(Question=query.lower().strip("."), Answer=ANSWER)
    assert user_prompt(query, "multi") == expected
    # training (rl_dataset.py) renders "<image>\n" + text: the newline comes with the text
    assert training_user_text(query, "multi") == "\n" + expected
    messages = chat_messages(query, answer_format="multi")
    assert messages[0] == {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
    assert messages[1]["content"] == [{"type": "image"}, {"type": "text", "text": expected}]


def test_single_prompt_is_unchanged_by_the_new_keyword():
    assert user_prompt("The knife.") == user_prompt("The knife.", "single")
    assert training_user_text("The knife.") == user_prompt("The knife.")
    assert "points_1" in user_prompt("x") and "bbox_2d" not in user_prompt("x")


def test_evaluation_query_follows_each_eval_script():
    # evaluation.py strips dots; evaluation_visionreasoner.py strips . " ? ! before the template
    assert evaluation_query('What is "it"?', "single") == 'What is "it"?'
    assert evaluation_query('What is "it"?', "multi") == 'what is "it'
    text = evaluation_query("Where's the cup?!", "multi")
    assert user_prompt(text, "multi") == QUESTION_TEMPLATE.format(
        Question="Where's the cup?!".lower().strip(".\"?!"), Answer=ANSWER
    )


def test_answer_format_names():
    assert ANSWER_FORMATS == ("single", "multi")
    with pytest.raises(ValueError, match="known: single, multi"):
        check_answer_format("double")
    with pytest.raises(ValueError, match="unknown answer format"):
        user_prompt("x", "json")


def wrap(body: str, think: str = "two cups") -> str:
    return f"<think>{think}</think><answer>{body}</answer>"


def test_parse_two_objects_and_rescale_with_int_plus_half():
    text = wrap('[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, {"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]')
    answer = parse_multi_answer(text)
    assert answer == MultiAnswer(
        objects=(ObjectAnswer((10, 100, 200, 210), (30, 110)), ObjectAnswer((225, 296, 706, 786), (302, 410))),
        thinking="two cups",
    )
    scaled = answer.rescale(1000, 500)  # fx = 1.190476..., fy = 0.595238...
    assert scaled.objects[0] == ObjectAnswer((12, 60, 238, 125), (36, 65))
    assert scaled.objects[1] == ObjectAnswer((268, 176, 840, 468), (360, 244))


def test_rescale_differs_from_the_single_formats_rounding():
    # single: round(int(v) * f); multi: int(v * f + 0.5) on the raw value
    obj = parse_multi_answer(wrap('[{"bbox_2d": [10.9, 1, 5, 7], "point_2d": [-3.2, 0]}]')).rescale(1260, 1260)
    assert obj.objects[0] == ObjectAnswer((16, 2, 8, 11), (-4, 0))  # 16.85→16, 1.5+.5→2, 7.5+.5→8; -4.3 → -4 (toward 0)


@pytest.mark.parametrize(
    ("body", "objects"),
    [("[]", 0), ("{}", 0), ('""', 0), ('[{"bbox_2d": [1,2,3,4,5], "point_2d": [1,2,3]}]', 1)],
)
def test_what_seg_zero_reads_as_valid(body, objects):
    assert len(parse_multi_answer(wrap(body)).objects) == objects
    boxes, points, _ = ref.extract_bbox_points_think(wrap(body), 1.0, 1.0)
    assert len(boxes) == len(points) == objects


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<think>t</think>[]", "no <answer>"),
        (wrap("none"), "does not parse"),
        (wrap('{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}'), "must be a list"),
        (wrap("5"), "must be a list"),
        (wrap('"x"'), "must be a list"),
        (wrap("[5]"), "must be a JSON object"),
        (wrap('[{"bbox_2d": [1,2,3,4]}]'), "no 'point_2d'"),
        (wrap('[{"bbox_2d": [1,2,3], "point_2d": [1,2]}]'), "list of 4"),
        (wrap('[{"bbox_2d": "1234", "point_2d": [1,2]}]'), "list of 4"),
        (wrap('[{"bbox_2d": ["1",2,3,4], "point_2d": [1,2]}]'), "must be a number"),
        (wrap('[{"bbox_2d": [NaN,2,3,4], "point_2d": [1,2]}]'), "finite"),
        (wrap('[{"bbox_2d": [true,2,3,4], "point_2d": [1,2]}]'), "must be a number"),
        (wrap('[{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}, {"bbox_2d": [1,2,3,4], "point_2d": [1]}]'), "object 1"),
    ],
)
def test_failures_keep_their_reason(text, reason):
    with pytest.raises(AnswerError, match=reason):
        parse_multi_answer(text)


def test_huge_value_is_an_answer_error_on_rescale():
    answer = parse_multi_answer(wrap('[{"bbox_2d": [1e308,2,3,4], "point_2d": [1,2]}]'))
    with pytest.raises(AnswerError, match="too large"):
        answer.rescale(1680, 840)


def test_single_parser_ignores_the_multi_format_as_before():
    # the single format's parser reads the first {...}: a multi answer's first object (no points)
    with pytest.raises(AnswerError, match="two keys containing 'points'"):
        parse_answer(wrap('[{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}]'))


# --- generated outputs against Seg-Zero's own extraction ------------------------------------------

value = st.one_of(
    st.integers(-50, 900), st.floats(-50, 900, allow_nan=False),
    st.sampled_from([True, None, "7", float("nan"), float("inf"), [1]]),
)  # fmt: skip
good_item = st.fixed_dictionaries(
    {
        "bbox_2d": st.lists(st.one_of(st.integers(0, 840), st.floats(-5, 845)), min_size=4, max_size=4),
        "point_2d": st.lists(st.integers(0, 840), min_size=2, max_size=2),
    }
)
odd_item = st.dictionaries(
    st.sampled_from(["bbox_2d", "point_2d", "label"]), st.one_of(st.lists(value, max_size=5), value), max_size=3
)
# sampled_from leans to its first entry: the well-formed case comes first
item = st.sampled_from([good_item] * 5 + [odd_item, value]).flatmap(lambda s: s)


@st.composite
def outputs(draw) -> str:
    data = draw(st.sampled_from([st.lists(item, max_size=4)] * 5 + [item, odd_item]).flatmap(lambda s: s))
    body = json.dumps(data)
    if draw(st.sampled_from([False] * 6 + [True])):
        body = body[: draw(st.integers(0, len(body)))]
    head = draw(st.sampled_from(["<think>x</think>", "", "<think>a<b</think>", "<think>\nmulti\nline</think> "]))
    tags = draw(st.sampled_from([("<answer>", "</answer>")] * 3 + [("<answer>\n", " </answer>"), ("", "</answer>"), ("<answer>", "")]))
    return head + tags[0] + body + tags[1]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs(), st.integers(1, 4000), st.integers(1, 4000))
def test_parser_agrees_with_seg_zeros_extraction(text, width, height):
    try:
        boxes, points, think = ref.extract_bbox_points_think(text, width / 840, height / 840)
        reference_ok = True
    except Exception:
        reference_ok = False
    try:
        answer = parse_multi_answer(text).rescale(width, height)
    except AnswerError:
        # a failure stays a failure; the one thing Seg-Zero accepts and we refuse is a boolean coordinate
        assert not reference_ok or "true" in text or "false" in text
        return
    assert reference_ok, text
    assert [list(o.bbox) for o in answer.objects] == boxes
    assert [list(o.point) for o in answer.objects] == points
    assert answer.thinking == think
