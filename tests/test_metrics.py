from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.metrics import IoUMeter, intersection_union


def _mask(shape, *boxes):
    m = np.zeros(shape, bool)
    for x1, y1, x2, y2 in boxes:
        m[y1:y2, x1:x2] = True
    return m


def test_hand_computed_giou_ciou():
    meter = IoUMeter()
    gt = _mask((10, 10), (0, 0, 4, 5))  # 20 px
    pred = _mask((10, 10), (2, 0, 6, 5))  # 20 px, overlap 10 → I 10, U 30
    assert meter.update(pred, gt) == pytest.approx(1 / 3)
    assert meter.update(None, _mask((10, 10), (0, 0, 10, 1))) == 0.0  # failure: I 0, U 10
    assert meter.update(gt, gt) == 1.0  # I 20, U 20
    assert meter.count == 3
    assert meter.giou == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert meter.ciou == pytest.approx(30 / 60)


def test_both_empty_is_skipped():
    meter = IoUMeter()
    empty = np.zeros((4, 4), bool)
    assert meter.update(empty, empty) is None
    assert meter.update(None, empty) is None
    assert meter.count == 0 and meter.skipped == 2
    assert meter.giou == 0.0 and meter.ciou == 0.0


def test_empty_prediction_against_nonempty_gt_counts_zero():
    meter = IoUMeter()
    gt = _mask((4, 4), (0, 0, 2, 2))
    assert meter.update(np.zeros((4, 4), bool), gt) == 0.0
    assert meter.count == 1


def test_ignore_pixels_leave_both_counts():
    gt = _mask((4, 4), (0, 0, 2, 2))
    pred = _mask((4, 4), (0, 0, 4, 4))
    ignore = _mask((4, 4), (2, 0, 4, 4))
    assert intersection_union(pred, gt) == (4, 16)
    assert intersection_union(pred, gt, ignore) == (4, 8)


def test_shape_mismatch_and_bad_counts():
    with pytest.raises(ValueError, match="shapes differ"):
        intersection_union(np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        IoUMeter().add(5, 3)


def test_summary_line():
    meter = IoUMeter()
    meter.add(1, 2)
    assert meter.summary() == "gIoU=0.5000 cIoU=0.5000 n=1"
