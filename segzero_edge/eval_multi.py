"""Scoring one multi-object sample as Seg-Zero's VisionReasoner evaluation does, plus the
two additions the multi-object task needs.

Seg-Zero (`evaluation_scripts/evaluation_visionreasoner.py`):
- the predicted mask is the union of the objects' masks; gIoU = mean per-sample I/U and
  cIoU = ΣI/ΣU, a failed parse counts I = 0, U = |GT|, both masks empty is skipped
  (as `segzero_edge.metrics` does for the single format);
- box metric: a hit when any predicted box (rescaled to the image, not clipped) has IoU > 0.5
  with the dataset's `bbox`, with continuous areas (no +1) and 0 for an empty union.

Added, each behind a switch:
- `box_metric="any-or-enclosing"`: the box enclosing all predicted boxes may hit too, for
  ground-truth boxes drawn around several instances;
- `no_target=True` (VisionReasoner's no-target handling): a sample whose ground truth is
  empty scores IoU 1 when the model predicted no box and 0 otherwise, and counts towards
  N-Acc, the share of such samples answered with no box. Without it such samples follow the
  rule above (skipped when both masks are empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .metrics import intersection_union

BOX_METRICS = ("any", "any-or-enclosing")
BOX_HIT_IOU = 0.5


def eval_box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Seg-Zero's evaluation box IoU: continuous areas, no corner ordering, 0 for a zero union."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, ix2 - ix1) * max(0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union == 0 else inter / union


def enclosing_box(boxes: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The smallest box holding every box (as written: corners are not reordered)."""
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if array.shape[0] == 0:
        raise ValueError("no boxes to enclose")
    x1, y1 = array[:, :2].min(axis=0)
    x2, y2 = array[:, 2:].max(axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def box_hit(pred_boxes: Sequence[Sequence[float]], gt_box: Sequence[float], box_metric: str = "any") -> bool:
    """Whether any predicted box (or, with "any-or-enclosing", the box around all) has IoU > 0.5."""
    if box_metric not in BOX_METRICS:
        raise ValueError(f"box_metric must be one of {BOX_METRICS}, got {box_metric!r}")
    if any(eval_box_iou(box, gt_box) > BOX_HIT_IOU for box in pred_boxes):
        return True
    return box_metric == "any-or-enclosing" and len(pred_boxes) > 1 and (
        eval_box_iou(enclosing_box(pred_boxes), gt_box) > BOX_HIT_IOU
    )


@dataclass(frozen=True)
class SampleScore:
    """One sample's contribution. `iou` None = skipped from gIoU (both masks empty);
    `box` / `no_target_hit` None = the sample does not count for that metric."""

    intersection: int
    union: int
    iou: float | None
    box: bool | None = None
    no_target_hit: bool | None = None


def score_sample(
    pred_mask: np.ndarray | None,
    pred_boxes: Sequence[Sequence[float]],
    gt_mask: np.ndarray,
    gt_box: Sequence[float] | None = None,
    ignore: np.ndarray | None = None,
    *,
    no_target: bool = False,
    box_metric: str = "any",
) -> SampleScore:
    """Score one multi-object prediction. `pred_mask=None` is a failed parse; `pred_boxes`
    are the answer's boxes rescaled to the image (empty for a failure or a "none" answer)."""
    inter, union = intersection_union(pred_mask, gt_mask, ignore)
    gt_empty = not np.asarray(gt_mask, dtype=bool).any()
    if no_target and gt_empty:
        hit = pred_mask is not None and len(pred_boxes) == 0
        return SampleScore(inter, union, 1.0 if hit else 0.0, None, hit)
    iou = inter / union if union else None
    box = None if gt_box is None or gt_empty else (pred_mask is not None and box_hit(pred_boxes, gt_box, box_metric))
    return SampleScore(inter, union, iou, box, None)


@dataclass
class MultiMeter:
    """gIoU / cIoU over the scored samples, box accuracy and N-Acc where they apply."""

    ious: list[float] = field(default_factory=list)
    intersection: int = 0
    union: int = 0
    skipped: int = 0
    box_hits: int = 0
    box_count: int = 0
    no_target_hits: int = 0
    no_target_count: int = 0

    def add(self, score: SampleScore) -> None:
        if score.iou is None:
            self.skipped += 1
        else:
            self.ious.append(score.iou)
            self.intersection += score.intersection
            self.union += score.union
        if score.box is not None:
            self.box_count += 1
            self.box_hits += score.box
        if score.no_target_hit is not None:
            self.no_target_count += 1
            self.no_target_hits += score.no_target_hit

    @property
    def count(self) -> int:
        return len(self.ious)

    @property
    def giou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0

    @property
    def ciou(self) -> float:
        return self.intersection / self.union if self.union else 0.0

    @property
    def box_accuracy(self) -> float | None:
        return self.box_hits / self.box_count if self.box_count else None

    @property
    def n_acc(self) -> float | None:
        return self.no_target_hits / self.no_target_count if self.no_target_count else None
