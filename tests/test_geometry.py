from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.geometry import (
    box_iou,
    box_iou_inclusive,
    box_l1,
    clip_box,
    clip_point,
    is_degenerate,
    mask_bbox,
    normalize_box,
    points_pair_distance,
    reference_points,
)


def test_iou_conventions_differ():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    # inclusive: 11x11 boxes, intersection 6x11
    assert box_iou_inclusive([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(66 / (121 + 121 - 66))
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_l1_and_pairing():
    assert box_l1([0, 0, 10, 10], [2, 2, 12, 12]) == 2
    assert points_pair_distance([[0, 0], [10, 0]], [[10, 0], [0, 0]]) == 0
    assert points_pair_distance([[0, 0], [0, 0]], [[3, 4], [6, 8]]) == pytest.approx(7.5)


def test_clip_and_normalize():
    assert normalize_box([10, 20, 0, 5]) == (0, 5, 10, 20)
    assert clip_box([-5, -5, 1000, 50], 640, 480) == (0, 0, 639, 50)
    assert clip_point([700, -3], 640, 480) == (639, 0)
    assert is_degenerate([5, 5, 5, 10]) and not is_degenerate([0, 0, 1, 1])


def test_mask_bbox():
    m = np.zeros((10, 20), bool)
    assert mask_bbox(m) is None
    m[2:5, 3:9] = True
    assert mask_bbox(m) == (3, 2, 8, 4)


def test_reference_points_two_discs():
    yy, xx = np.mgrid[:200, :300]
    big = (xx - 70) ** 2 + (yy - 100) ** 2 <= 40**2
    small = (xx - 230) ** 2 + (yy - 100) ** 2 <= 25**2
    p1, p2 = reference_points(big | small)
    assert p1 == (70, 100)  # centre of the largest inscribed circle
    assert abs(p2[0] - 230) <= 1 and abs(p2[1] - 100) <= 1  # the other disc's centre


def test_reference_points_rectangle_points_are_inside_and_apart():
    m = np.zeros((100, 400), bool)
    m[20:80, 10:390] = True
    p1, p2 = reference_points(m)
    assert m[p1[1], p1[0]] and m[p2[1], p2[0]]
    assert abs(p1[0] - p2[0]) > 50


def test_reference_points_single_pixel_and_errors():
    m = np.zeros((5, 5), bool)
    m[2, 3] = True
    assert reference_points(m) == ((3, 2), (3, 2))
    with pytest.raises(ValueError, match="non-empty"):
        reference_points(np.zeros((5, 5), bool))
