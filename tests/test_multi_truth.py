"""Seg-Zero's multi-object ground truth from instance masks, and its solution strings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import segzero_reference_multi as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_edge.multi_truth import (
    ObjectTruth,
    instance_truth,
    instances_from_labels,
    parse_solution_multi,
    rescale_objects,
    solution_json,
)
from segzero_edge.rewards_multi import accuracy


@st.composite
def instance_masks(draw) -> np.ndarray:
    h, w = draw(st.integers(5, 90)), draw(st.integers(5, 90))
    m = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(1, 3))):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        m[y : y + draw(st.integers(1, h)), x : x + draw(st.integers(1, w))] = 1
    return m


@settings(max_examples=300, deadline=None)
@given(instance_masks())
def test_instance_truth_is_seg_zeros_preparation(m):
    truth = instance_truth(m.astype(bool))
    assert truth is not None and truth.to_json() == ref.notebook_instance_truth(m)


def test_worked_example():
    m = np.zeros((100, 200), bool)  # x factor 4.2, y factor 8.4
    m[10:30, 50:90] = True  # box (50, 10, 89, 29); EDT peak 10 first reached at (59, 19) in row-major order
    truth = instance_truth(m)
    assert truth == ObjectTruth(bbox=(210, 84, 374, 244), point=(248, 160))
    assert instance_truth(np.zeros((4, 4), bool)) is None
    with pytest.raises(ValueError, match="2-D"):
        instance_truth(np.zeros((2, 2, 2), bool))


def test_label_images_split_into_instances():
    labels = np.array([[0, 1, 1], [2, 2, 0], [0, 0, 7]])
    masks = instances_from_labels(labels)
    assert [m.sum() for m in masks] == [2, 2, 1] and masks[2][2, 2]
    assert len(instances_from_labels(np.array([[0, 255], [255, 0]]))) == 1  # binary mask: one object
    with pytest.raises(ValueError, match="distinct nonzero values"):
        instances_from_labels(np.arange(200).reshape(10, 20))


def test_solution_round_trip_and_reward():
    objects = [ObjectTruth((1, 2, 30, 40), (10, 20)), ObjectTruth((100, 100, 200, 200), (150, 150))]
    text = solution_json(objects)
    assert text == json.dumps([{"bbox_2d": [1, 2, 30, 40], "point_2d": [10, 20]}, {"bbox_2d": [100, 100, 200, 200], "point_2d": [150, 150]}])
    assert parse_solution_multi(text) == objects
    assert accuracy(f"<answer>{text}</answer>", text) == 3.0
    assert parse_solution_multi("[]") == []
    assert rescale_objects(objects, 420) == [ObjectTruth((0, 1, 15, 20), (5, 10)), ObjectTruth((50, 50, 100, 100), (75, 75))]
    assert rescale_objects(objects, 840) == objects


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        ("<box>(1,2),(3,4)</box>", "not JSON"),
        ('{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}', "must be a JSON list"),
        ("[5]", "not a JSON object"),
        ('[{"bbox_2d": [1,2,3], "point_2d": [1,2]}]', "bbox_2d must be a list of 4"),
        ('[{"bbox_2d": [1,2,3,4]}]', "point_2d must be a list of 2"),
        ('[{"bbox_2d": [1,2,3,4], "point_2d": [true,2]}]', "point_2d"),
    ],
)
def test_malformed_solutions_say_why(solution, reason):
    with pytest.raises(ValueError, match=reason):
        parse_solution_multi(solution)
