"""Seg-Zero's multi-object ground truth: one box + one point per instance, in 840 space.

Seg-Zero's training column `solution` is `json.dumps` of a list of
`{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}`. Its data preparation
(`prepare_dataset/gen_training_dataset.py` and the tutorial notebook) computes each
instance's tight box (inclusive max pixel) and the argmax of its mask's Euclidean distance
transform on the ORIGINAL image, then maps both to 840 space with `int(v * 840/W + 0.5)`.
`instance_truth` does the same; the reference points come from `geometry.reference_points`
(scipy, the `train` extra), whose first point is that argmax.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import mask_bbox, reference_points
from .prompts import REASONER_SIZE

#: Seg-Zero's cap on objects per side in its accuracy reward; more instances than this in one
#: query is almost surely a label image that is not one (an anti-aliased or JPEG mask).
MAX_INSTANCES = 120


@dataclass(frozen=True)
class ObjectTruth:
    """One ground-truth object: inclusive box and one point, ints in one pixel space."""

    bbox: tuple[int, int, int, int]
    point: tuple[int, int]

    def to_json(self) -> dict[str, list[int]]:
        return {"bbox_2d": list(self.bbox), "point_2d": list(self.point)}


def instance_truth(mask: np.ndarray, size: int = REASONER_SIZE) -> ObjectTruth | None:
    """Box and distance-transform peak of one instance mask (any HxW), mapped to size² space
    as Seg-Zero maps them; None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"an instance mask must be 2-D, got shape {mask.shape}")
    box = mask_bbox(mask)
    if box is None:
        return None
    # The distance transform of a crop with a 1-px background border equals the full one
    # inside it, with the same row-major tie-break: same point, far less work.
    x0, y0 = max(0, box[0] - 1), max(0, box[1] - 1)
    (px, py), _ = reference_points(mask[y0 : box[3] + 2, x0 : box[2] + 2])
    height, width = mask.shape
    fx, fy = size / width, size / height  # factor first, then multiply: Seg-Zero's rounding
    x1, y1, x2, y2 = box
    return ObjectTruth(
        bbox=(int(x1 * fx + 0.5), int(y1 * fy + 0.5), int(x2 * fx + 0.5), int(y2 * fy + 0.5)),
        point=(int((px + x0) * fx + 0.5), int((py + y0) * fy + 0.5)),
    )


def instances_from_labels(labels: np.ndarray) -> list[np.ndarray]:
    """One bool mask per distinct nonzero value of a label image (a binary mask is one instance)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label image must be 2-D, got shape {labels.shape}")
    values = np.unique(labels[labels != 0])
    if values.size > MAX_INSTANCES:
        raise ValueError(
            f"{values.size} distinct nonzero values: not an instance label image (at most {MAX_INSTANCES})"
        )
    return [labels == v for v in values]


def solution_json(objects: Iterable[ObjectTruth]) -> str:
    """Seg-Zero's `solution` string: `json.dumps` of the object list (default separators)."""
    return json.dumps([o.to_json() for o in objects])


def _ints(value: Any, n: int, where: str) -> tuple[int, ...]:
    ok = (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )
    if not ok:
        raise ValueError(f"{where} must be a list of {n} finite numbers, got {value!r}")
    return tuple(int(v) for v in value)


def parse_solution_multi(solution: str) -> list[ObjectTruth]:
    """Read a multi-object `solution` string; raises ValueError saying what is malformed.

    Accepts what Seg-Zero's accuracy reward can score: a JSON list of objects with a 4-number
    `bbox_2d` and a 2-number `point_2d` (an empty list is valid and means no target).
    """
    if not isinstance(solution, str):
        raise ValueError(f"a solution must be a JSON string, got {type(solution).__name__}")
    try:
        data = json.loads(solution)
    except json.JSONDecodeError as exc:
        raise ValueError(f"solution is not JSON ({exc}): {solution[:80]!r}") from None
    if not isinstance(data, list):
        raise ValueError(f"solution must be a JSON list of objects, got {type(data).__name__}: {solution[:80]!r}")
    objects = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"solution object {i} is not a JSON object: {item!r}")
        bbox = _ints(item.get("bbox_2d"), 4, f"solution object {i} bbox_2d")
        point = _ints(item.get("point_2d"), 2, f"solution object {i} point_2d")
        objects.append(ObjectTruth(bbox=bbox, point=point))  # type: ignore[arg-type]
    return objects


def rescale_objects(objects: Sequence[ObjectTruth], size: int, source: int = REASONER_SIZE) -> list[ObjectTruth]:
    """Objects from source² to size² space, `round(v * size / source)` as the single-object
    adapters scale their ground truth; the identity when the sizes agree."""
    if size == source:
        return list(objects)

    def scale(v: int) -> int:
        return round(v * size / source)

    return [
        ObjectTruth(bbox=tuple(scale(v) for v in o.bbox), point=tuple(scale(v) for v in o.point))  # type: ignore[arg-type]
        for o in objects
    ]
