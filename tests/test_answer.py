from __future__ import annotations

import pytest

from segzero_edge.answer import Answer, AnswerError, extract_thinking, parse_and_rescale, parse_answer

GOOD = "<think>the red one</think><answer>{\"bbox\": [10,100,200,210], \"points_1\": [30,110], \"points_2\": [35,180]}</answer>"


def test_parse_good():
    a = parse_answer(GOOD)
    assert a == Answer(bbox=(10, 100, 200, 210), points=((30, 110), (35, 180)), thinking="the red one")


def test_rescale_uses_round_of_int_times_factor():
    a = parse_answer(GOOD).rescale(1680, 420)
    assert a.bbox == (20, 50, 400, 105)
    assert a.points == ((60, 55), (70, 90))


def test_rescale_rounds_half_to_even_like_python():
    a = Answer(bbox=(1, 3, 5, 7), points=((1, 1), (3, 3)))
    # factor 1.5: 1.5 → 2, 4.5 → 4, 7.5 → 8, 10.5 → 10
    assert a.rescale(1260, 1260).bbox == (2, 4, 8, 10)


def test_floats_and_numeric_strings_truncate_like_int():
    text = '{"bbox": [10.9, "100", 200, 210.2], "points_1": [30, 110], "points_2": [35.5, 180]}'
    assert parse_answer(text).bbox == (10, 100, 200, 210)
    assert parse_answer(text).points[1] == (35, 180)


def test_keys_by_substring():
    text = '{"bbox_2d": [1,2,3,4], "points_a": [1,2], "Points_b": [3,4], "points_c": [9,9]}'
    a = parse_answer(text)
    assert a.bbox == (1, 2, 3, 4) and a.points == ((1, 2), (3, 4))


@pytest.mark.parametrize(
    "text,reason",
    [
        ("<think>no answer</think>", "no JSON"),
        ("{'bbox': [1,2,3,4]}", "does not parse"),
        ('{"box": [1,2,3,4], "points_1": [1,2], "points_2": [1,2]}', "'bbox'"),
        ('{"bbox": [1,2,3,4], "points_1": [1,2]}', "two keys containing 'points'"),
        ('{"bbox": [1,2,3], "points_1": [1,2], "points_2": [1,2]}', "must hold 4"),
        ('{"bbox": [1,2,3,4], "points_1": [1], "points_2": [1,2]}', "must hold 2"),
        ('{"bbox": "1234", "points_1": [1,2], "points_2": [1,2]}', "must be a list"),
        ('{"bbox": [1,2,3,"x"], "points_1": [1,2], "points_2": [1,2]}', "numeric"),
        ('{"bbox": [1,2,3,true], "points_1": [1,2], "points_2": [1,2]}', "numeric"),
        ('{"bbox": [1,2,3,NaN], "points_1": [1,2], "points_2": [1,2]}', "finite"),
        ('{"bbox": [1,2,3,null], "points_1": [1,2], "points_2": [1,2]}', "numeric"),
    ],
)
def test_errors_say_why(text, reason):
    with pytest.raises(AnswerError, match=reason):
        parse_answer(text)


def test_non_string_is_an_answer_error():
    with pytest.raises(AnswerError):
        parse_answer(None)  # type: ignore[arg-type]


def test_rescale_rejects_empty_image():
    with pytest.raises(AnswerError):
        parse_and_rescale(GOOD, 0, 10)


def test_thinking_extraction():
    assert extract_thinking("<think>a</think><think>b</think>") == "a"
    assert extract_thinking("<think>has <tag> inside</think>") == ""
    assert extract_thinking("nothing") == ""
