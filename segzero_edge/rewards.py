"""Seg-Zero's rule-based rewards, per sample, equal to Seg-Zero's strict reward on every input.

Each component is 0 or 1; `seg_zero` is their sum (0..5). Ground truth is in 840 space:
`gt_bbox=[x1, y1, x2, y2]`, `gt_points=[[x, y], [x, y]]` (None counts as missing, which
scores 0 as in Seg-Zero when its solution string lacks that part).

The predicate code deliberately mirrors Seg-Zero's own Python operations (the raw JSON
values go into `max`, `abs`, `int` and comparisons unconverted), so that odd inputs
(floats, numeric strings, booleans, NaN, swapped corners, zero unions) score exactly as
they do there. Any exception inside a reward means 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .geometry import box_iou_inclusive, box_l1, point_in_box, points_pair_distance

_JSON_RE = re.compile(r"{[^}]+}")
_THINK_FORMAT_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_SOLUTION_BOX_RE = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
_SOLUTION_POINTS_RE = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")

IOU_THRESHOLD = 0.5
BOX_L1_THRESHOLD = 10
POINTS_L1_THRESHOLD = 100

GtBox = Sequence[float] | None
GtPoints = Sequence[Sequence[float]] | None


def _answer_json(text: str) -> Any:
    """The first `{[^}]+}` parsed as JSON, or None when there is none (parse errors raise)."""
    match = _JSON_RE.search(text)
    return json.loads(match.group(0)) if match else None


def think_format(text: str) -> float:
    """1 when the whole text is `<think>…</think>` then `<answer>…</answer>` (whitespace between)."""
    try:
        return 1.0 if _THINK_FORMAT_RE.fullmatch(text) else 0.0
    except Exception:  # any failure scores 0, as in Seg-Zero
        return 0.0


def answer_format(text: str, strict: bool = True) -> float:
    """1 when the answer JSON has a 4-list bbox and two 2-list points.

    strict: the keys must be exactly `bbox`, `points_1`, `points_2` (Seg-Zero's reward).
    soft: the first key containing "bbox" and the first two containing "points" (the
    evaluation parser's rule).
    """
    try:
        data = _answer_json(text)
        if data is None:
            return 0.0
        if strict:
            if any(key not in data for key in ("bbox", "points_1", "points_2")):
                return 0.0
            bbox_key, points_keys = "bbox", ["points_1", "points_2"]
        else:
            bbox_key = next((k for k in data if "bbox" in k.lower()), None)
            points_keys = [k for k in data if "points" in k.lower()][:2]
            if bbox_key is None or len(points_keys) < 2:
                return 0.0
        bbox = data[bbox_key]
        if not isinstance(bbox, list) or len(bbox) != 4:
            return 0.0
        for key in points_keys:
            if not isinstance(data[key], list) or len(data[key]) != 2:
                return 0.0
        return 1.0
    except Exception:
        return 0.0


def _predicted_bbox(text: str) -> Any:
    data = _answer_json(text)
    if data is None:
        return None
    bbox = data["bbox"]
    return bbox if len(bbox) == 4 else None


def bbox_iou(text: str, gt_bbox: GtBox) -> float:
    """1 when the predicted bbox has inclusive IoU > 0.5 with the ground truth."""
    try:
        bbox = _predicted_bbox(text)
        if bbox is not None and gt_bbox is not None and box_iou_inclusive(bbox, gt_bbox) > IOU_THRESHOLD:
            return 1.0
    except Exception:
        pass
    return 0.0


def bbox_l1(text: str, gt_bbox: GtBox) -> float:
    """1 when the mean L1 distance of the box corners is below 10."""
    try:
        bbox = _predicted_bbox(text)
        if bbox is not None and gt_bbox is not None and box_l1(bbox, gt_bbox) < BOX_L1_THRESHOLD:
            return 1.0
    except Exception:
        pass
    return 0.0


def points_l1(text: str, gt_points: GtPoints) -> float:
    """1 when both points (after `int()`) lie in the predicted box and their paired mean
    distance to the ground-truth points is below 100."""
    try:
        data = _answer_json(text)
        if data is None or gt_points is None:
            return 0.0
        bbox = data["bbox"]
        if len(bbox) != 4:  # Seg-Zero fails here (its box variable is never set)
            return 0.0
        p1, p2 = data["points_1"], data["points_2"]
        p1 = [int(p1[0]), int(p1[1])]
        p2 = [int(p2[0]), int(p2[1])]
        if point_in_box(p1, bbox) and point_in_box(p2, bbox):
            if points_pair_distance([p1, p2], gt_points) < POINTS_L1_THRESHOLD:
                return 1.0
    except Exception:
        pass
    return 0.0


def seg_zero(text: str, gt_bbox: GtBox, gt_points: GtPoints, strict: bool = True) -> float:
    """Seg-Zero's total reward: the sum of the five components (0..5)."""
    return (
        bbox_iou(text, gt_bbox)
        + think_format(text)
        + answer_format(text, strict=strict)
        + points_l1(text, gt_points)
        + bbox_l1(text, gt_bbox)
    )


@dataclass(frozen=True)
class Solution:
    """Ground truth read from a Seg-Zero solution string; a part it lacks is None."""

    bbox: tuple[int, int, int, int] | None
    points: tuple[tuple[int, int], tuple[int, int]] | None


def parse_solution(solution: str) -> Solution:
    """Read `<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`.

    Raises ValueError when neither part is present; a missing part alone is None.
    """
    box_match = _SOLUTION_BOX_RE.search(solution.strip())
    points_match = _SOLUTION_POINTS_RE.search(solution)
    if box_match is None and points_match is None:
        raise ValueError(f"not a Seg-Zero solution string (no <box> and no <points>): {solution[:80]!r}")
    bbox = tuple(int(v) for v in box_match.groups()) if box_match else None
    points = None
    if points_match:
        x1, y1, x2, y2 = (int(v) for v in points_match.groups())
        points = ((x1, y1), (x2, y2))
    return Solution(bbox=bbox, points=points)  # type: ignore[arg-type]


def seg_zero_solution(text: str, solution: str) -> float:
    """`seg_strict_compute_score(text, solution)` with Seg-Zero's solution-string ground truth."""
    try:
        gt = parse_solution(solution)
    except ValueError:
        gt = Solution(None, None)
    return seg_zero(text, gt.bbox, gt.points)


RewardFn = Callable[[str, GtBox, GtPoints], float]

#: name → reward with the uniform signature `fn(text, gt_bbox, gt_points) -> float`.
REWARDS: dict[str, RewardFn] = {
    "think_format": lambda text, gt_bbox, gt_points: think_format(text),
    "answer_format": lambda text, gt_bbox, gt_points: answer_format(text, strict=True),
    "answer_format_soft": lambda text, gt_bbox, gt_points: answer_format(text, strict=False),
    "bbox_iou": lambda text, gt_bbox, gt_points: bbox_iou(text, gt_bbox),
    "bbox_l1": lambda text, gt_bbox, gt_points: bbox_l1(text, gt_bbox),
    "points_l1": lambda text, gt_bbox, gt_points: points_l1(text, gt_points),
    "seg_zero": lambda text, gt_bbox, gt_points: seg_zero(text, gt_bbox, gt_points, strict=True),
    "seg_zero_soft": lambda text, gt_bbox, gt_points: seg_zero(text, gt_bbox, gt_points, strict=False),
}

#: The strict components whose sum is `seg_zero`, in the order training logs them.
SEG_ZERO_COMPONENTS = ("think_format", "answer_format", "bbox_iou", "bbox_l1", "points_l1")


def get_reward(name: str) -> RewardFn:
    """Look a reward up by name, with the known names in the error."""
    try:
        return REWARDS[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(sorted(REWARDS))}") from None
