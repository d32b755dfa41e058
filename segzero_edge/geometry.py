"""Box and point geometry shared by rewards, the pipeline and data preparation.

Two IoU conventions exist on purpose: Seg-Zero's rewards count pixels inclusively
(`x2 - x1 + 1`), while mask-free box comparisons elsewhere use the plain area.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Box = Sequence[float]
Point = Sequence[float]


def box_iou_inclusive(a: Box, b: Box) -> float:
    """Seg-Zero's reward IoU: inclusive areas, intersection only if `ix1 < ix2 and iy1 < iy2`.

    Raises ZeroDivisionError on a zero union, as Seg-Zero does (its reward then gives 0).
    """
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter) / (area_a + area_b - inter)


def box_iou(a: Box, b: Box) -> float:
    """Plain IoU of two `(x1, y1, x2, y2)` boxes with continuous areas; 0 for an empty union."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def box_l1(a: Box, b: Box) -> float:
    """Mean absolute difference of the four box coordinates."""
    return (abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]) + abs(a[3] - b[3])) / 4


def points_pair_distance(pred: Sequence[Point], gt: Sequence[Point]) -> float:
    """Mean Euclidean distance under the better pairing: `min(d11 + d22, d12 + d21) / 2`."""
    (p1, p2), (g1, g2) = pred, gt
    # sqrt of squares, not math.dist: the exact float Seg-Zero compares against its threshold.
    straight = _dist(p1, g1) + _dist(p2, g2)
    crossed = _dist(p1, g2) + _dist(p2, g1)
    return min(straight, crossed) / 2


def _dist(p: Point, q: Point) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


def point_in_box(point: Point, box: Box) -> bool:
    """Inclusive containment, as in Seg-Zero's points reward."""
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def normalize_box(box: Box) -> tuple[int, int, int, int]:
    """Order the corners so that x1 <= x2 and y1 <= y2 (a model may swap them)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def clip_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Normalise the corners and clip them to pixel coordinates of a W×H image."""
    x1, y1, x2, y2 = normalize_box(box)
    return (
        min(max(x1, 0), width - 1),
        min(max(y1, 0), height - 1),
        min(max(x2, 0), width - 1),
        min(max(y2, 0), height - 1),
    )


def clip_point(point: Point, width: int, height: int) -> tuple[int, int]:
    """Clip one `(x, y)` point into a W×H image."""
    return min(max(int(point[0]), 0), width - 1), min(max(int(point[1]), 0), height - 1)


def is_degenerate(box: Box) -> bool:
    """True when a box has no extent along x or y (after corner ordering)."""
    x1, y1, x2, y2 = normalize_box(box)
    return x2 <= x1 or y2 <= y1


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight inclusive `(x1, y1, x2, y2)` box of a boolean HxW mask; None when it is empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def reference_points(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Seg-Zero's two reference points `((x, y), (x, y))` of a non-empty boolean mask.

    p1 is the argmax of the Euclidean distance transform (the largest inscribed circle);
    p2 is that argmax among mask pixels farther from p1 than the median such distance
    (the second circle, away from the first). Ties go to the first pixel in row-major order.
    """
    try:
        from scipy.ndimage import distance_transform_edt
    except ImportError as exc:  # scipy comes with the `train` extra
        raise ImportError("reference_points needs scipy: pip install 'segzero-edge[train]'") from exc
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        raise ValueError(f"reference_points needs a non-empty 2-D mask, got shape {mask.shape}")
    dist = distance_transform_edt(mask)
    y1, x1 = np.unravel_index(int(np.argmax(dist)), dist.shape)
    ys, xs = np.nonzero(mask)
    from_p1 = np.hypot(xs - x1, ys - y1)
    far = from_p1 > np.median(from_p1)
    if not far.any():  # a one-pixel or perfectly uniform mask: both circles coincide
        return (int(x1), int(y1)), (int(x1), int(y1))
    candidates = np.flatnonzero(far)
    best = candidates[int(np.argmax(dist[ys[candidates], xs[candidates]]))]
    return (int(x1), int(y1)), (int(xs[best]), int(ys[best]))
