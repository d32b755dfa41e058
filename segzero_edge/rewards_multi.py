"""Seg-Zero's multi-object rewards (its current release, the VisionReasoner format).

Source: `verl/utils/reward_score/vision_reasoner.py` in dvlab-research/Seg-Zero. The total
`vision_reasoner` is `think_format + seg_format + accuracy + non_repeat`, at most 7.0:

- `think_format` (0/1): the whole text is `<think>…</think>` then `<answer>…</answer>`.
- `seg_format` (0..2): per item of the answer list, +1 for a 4-list `bbox_2d` and +1 for a
  2-list `point_2d`, each item's sum divided by the item count. The sum is accumulated item
  by item inside one `try`, so an exception keeps the partial sum.
- `accuracy` (0..3): both lists truncated to 120 objects; per (prediction, ground truth)
  pair three 0/1 terms (inclusive box IoU > 0.5, mean box L1 < 10, point distance < 30 with
  the predicted point inside its own predicted box); Hungarian matching on 3 − sum; score
  (3·pairs − matched cost) / max(M, N). Any exception gives 0 (an empty list included).
- `non_repeat` (0/1): the text split on '.', pieces stripped, empty ones dropped; 0 once two
  pieces have repeated an earlier one.

The functions repeat the original's numpy and Python operations one for one, so odd inputs
(floats, strings, booleans, nested lists, dicts, truncated JSON) score exactly as there; the
test suite compares them with a verbatim transcription on table cases and thousands of
generated outputs. `solution` is Seg-Zero's ground-truth column: `json.dumps` of a list of
`{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}` in 840 space.

One deliberate difference: a non-string completion raises TypeError in every function (the
original's total crashes on it too, in its format reward). The Hungarian step uses scipy
when installed, else an exact numpy solver (`segzero_edge.assignment`): the base install has
no scipy, and the reward depends only on the optimal cost, which both find.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .assignment import linear_sum_assignment

_THINK_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)

#: Seg-Zero's cap on objects per side before matching.
MAX_OBJECTS = 120
IOU_THRESHOLD = 0.5
BOX_L1_THRESHOLD = 10
POINT_DISTANCE_THRESHOLD = 30


def _text(text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a completion must be a string, got {type(text).__name__}")
    return text


def think_format(text: str) -> float:
    """1 when the whole text is `<think>…</think>`, whitespace, `<answer>…</answer>`."""
    return 1.0 if _THINK_FORMAT_RE.fullmatch(_text(text)) else 0.0


def seg_format(text: str) -> float:
    """Per answer item, +1 for a 4-list `bbox_2d` and +1 for a 2-list `point_2d`, over the item count."""
    text = _text(text)
    reward = 0.0
    try:
        match = _ANSWER_RE.search(text)
        if not match:
            return reward
        data = json.loads(match.group(1))
        count = len(data)  # a dict or a string has a len too: Seg-Zero iterates its keys / characters
        for item in data:
            item_reward = 0.0
            if "bbox_2d" in item:  # on a string item this is a substring test, as in the original
                bbox = item["bbox_2d"]
                if isinstance(bbox, list) and len(bbox) == 4:
                    item_reward += 1.0
            if "point_2d" in item:
                point = item["point_2d"]
                if isinstance(point, list) and len(point) == 2:
                    item_reward += 1.0
            reward += item_reward / count  # accumulated: a later exception keeps this much
    except Exception:  # the original swallows every failure and keeps the partial sum
        pass
    return reward


def _batch_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """[M, N] inclusive IoU (`x2 - x1 + 1`), intersection clamped at 0 per side."""
    x11, y11, x12, y12 = np.split(boxes1, 4, axis=1)
    x21, y21, x22, y22 = np.split(boxes2, 4, axis=1)
    xa = np.maximum(x11, np.transpose(x21))
    ya = np.maximum(y11, np.transpose(y21))
    xb = np.minimum(x12, np.transpose(x22))
    yb = np.minimum(y12, np.transpose(y22))
    inter = np.maximum(0, xb - xa + 1) * np.maximum(0, yb - ya + 1)
    area1 = (x12 - x11 + 1) * (y12 - y11 + 1)
    area2 = (x22 - x21 + 1) * (y22 - y21 + 1)
    return inter / (area1 + np.transpose(area2) - inter)


def _batch_l1(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(boxes1[:, np.newaxis, :] - boxes2[np.newaxis, :, :]), axis=2)


def _batch_distance(points1: np.ndarray, points2: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum((points1[:, np.newaxis, :] - points2[np.newaxis, :, :]) ** 2, axis=2))


def _points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[M] inclusive containment of point i in box i."""
    x_in = (points[:, 0] >= boxes[:, 0]) & (points[:, 0] <= boxes[:, 2])
    y_in = (points[:, 1] >= boxes[:, 1]) & (points[:, 1] <= boxes[:, 3])
    return x_in & y_in


def accuracy(text: str, solution: Any) -> float:
    """Hungarian-matched box/point accuracy against the ground-truth JSON list (0..3)."""
    text = _text(text)
    try:
        gt_data = json.loads(solution)
        gt_boxes = [item["bbox_2d"] for item in gt_data]
        gt_points = [item["point_2d"] for item in gt_data]
        match = _ANSWER_RE.search(text)
        if not match:
            return 0.0
        data = json.loads(match.group(1))
        pred_boxes = [item["bbox_2d"] for item in data][:MAX_OBJECTS]
        pred_points = [item["point_2d"] for item in data][:MAX_OBJECTS]
        gt_boxes, gt_points = gt_boxes[:MAX_OBJECTS], gt_points[:MAX_OBJECTS]
        pb, pp = np.array(pred_boxes), np.array(pred_points)  # [M, 4], [M, 2]
        gb, gp = np.array(gt_boxes), np.array(gt_points)  # [N, 4], [N, 2]
        iou = _batch_iou(pb, gb)
        l1 = _batch_l1(pb, gb)
        distance = _batch_distance(pp, gp)
        inside = _points_in_boxes(pp, pb)
        iou_term = (iou > IOU_THRESHOLD).astype(float)
        l1_term = (l1 < BOX_L1_THRESHOLD).astype(float)
        point_term = ((distance < POINT_DISTANCE_THRESHOLD) & inside[:, np.newaxis]).astype(float)
        cost = 3.0 - (iou_term + l1_term + point_term)
        rows, cols = linear_sum_assignment(cost)
        total = len(rows) * 3.0 - cost[rows, cols].sum()
        return float(total / max(len(pred_boxes), len(gt_boxes)))
    except Exception:  # Seg-Zero: any failure, an empty list included, scores 0
        return 0.0


def non_repeat(text: str) -> float:
    """0 once two '.'-separated pieces (stripped, non-empty) have repeated an earlier piece."""
    sentences = [s.strip() for s in _text(text).split(".") if s.strip()]
    seen: set[str] = set()
    repeats = 0
    for sentence in sentences:
        if sentence in seen:
            repeats += 1
        if repeats >= 2:
            return 0.0
        seen.add(sentence)
    return 1.0


def vision_reasoner(text: str, solution: Any) -> float:
    """Seg-Zero's total: (think_format + seg_format) + accuracy + non_repeat, in its order (0..7)."""
    format_reward = think_format(text) + seg_format(text)
    return format_reward + accuracy(text, solution) + non_repeat(text)


MultiRewardFn = Callable[[str, Any], float]

#: name → reward with the signature `fn(text, solution) -> float`. `think_format` is shared
#: with the single-object registry (`segzero_edge.rewards.REWARDS`), where it is identical.
REWARDS_MULTI: dict[str, MultiRewardFn] = {
    "seg_format": lambda text, solution: seg_format(text),
    "accuracy": accuracy,
    "non_repeat": lambda text, solution: non_repeat(text),
    "vision_reasoner": vision_reasoner,
}

#: The components whose sum is `vision_reasoner`, in the order training logs them.
VISION_REASONER_COMPONENTS = ("think_format", "seg_format", "accuracy", "non_repeat")
