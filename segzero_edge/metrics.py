"""gIoU / cIoU exactly as Seg-Zero computes them.

gIoU is the mean of per-sample IoUs; cIoU is ΣI / ΣU. A failed sample (no parse, no
mask) counts as I = 0 and U = |GT|. A sample where both masks are empty is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def intersection_union(pred: np.ndarray | None, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[int, int]:
    """Pixel counts (I, U) of a predicted and a ground-truth mask of the same HxW shape.

    `pred=None` is a failure: I = 0, U = |GT|. `ignore` (LISA's semantics) removes those
    pixels from both counts.
    """
    gt = np.asarray(gt, dtype=bool)
    valid = None if ignore is None else ~np.asarray(ignore, dtype=bool)
    if valid is not None:
        gt = gt & valid
    if pred is None:
        return 0, int(gt.sum())
    pred = np.asarray(pred, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: pred {pred.shape} vs gt {gt.shape}")
    if valid is not None:
        pred = pred & valid
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


@dataclass
class IoUMeter:
    """Accumulates per-sample intersection and union; `.giou`, `.ciou`, `.count`."""

    intersections: list[int] = field(default_factory=list)
    unions: list[int] = field(default_factory=list)
    skipped: int = 0

    def update(self, pred: np.ndarray | None, gt: np.ndarray, ignore: np.ndarray | None = None) -> float | None:
        """Record one sample; returns its IoU, or None when it was skipped (both empty)."""
        inter, union = intersection_union(pred, gt, ignore)
        return self.add(inter, union)

    def add(self, intersection: int, union: int) -> float | None:
        """Record precomputed counts (e.g. read back from a results file)."""
        if intersection < 0 or union < intersection:
            raise ValueError(f"invalid counts: I={intersection}, U={union}")
        if union == 0:  # both masks empty: nothing to score
            self.skipped += 1
            return None
        self.intersections.append(int(intersection))
        self.unions.append(int(union))
        return intersection / union

    @property
    def count(self) -> int:
        return len(self.unions)

    @property
    def giou(self) -> float:
        if not self.unions:
            return 0.0
        return float(np.mean(np.asarray(self.intersections, dtype=np.float64) / np.asarray(self.unions)))

    @property
    def ciou(self) -> float:
        total = sum(self.unions)
        return sum(self.intersections) / total if total else 0.0

    def summary(self) -> str:
        return f"gIoU={self.giou:.4f} cIoU={self.ciou:.4f} n={self.count}"
