"""Dataset adapters for the multi-object (VisionReasoner) format: rows → a `solution` column.

Three layouts, each giving Seg-Zero's multi-object ground truth (`segzero_edge.multi_truth`):

- Seg-Zero's training layout: `problem`, `solution` (`json.dumps` of a list of
  `{"bbox_2d", "point_2d"}` in 840 space), `image`;
- a mask dataset (`image`, `text`, `mask`): one object per distinct nonzero value of the mask,
  so a binary mask is one object and an instance label image (0 = background, k = instance
  k) is several;
- an instance dataset (`image`, `text`, `masks`): one object per (non-empty) mask in the list.

Masks give each instance's tight box and distance-transform peak, computed on the mask at
its own resolution and mapped to 840 space with `int(v * 840/W + 0.5)`, as Seg-Zero's data
preparation does. Rows whose ground truth has no object are skipped ("no target"): Seg-Zero's
accuracy reward scores 0 against an empty list whatever the answer, so they teach nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segzero_edge.images import ImageError
from segzero_edge.multi_truth import (
    ObjectTruth,
    instance_truth,
    instances_from_labels,
    parse_solution_multi,
)
from segzero_edge.train.mask_cells import mask_pixels

if TYPE_CHECKING:
    import datasets

INSTANCE_COLUMNS = ("image", "text", "masks")


def undecoded_masks(ds: datasets.Dataset) -> datasets.Dataset:
    """A `masks` list-of-Image column as raw {"bytes", "path"} structs (decoded per row here)."""
    import datasets

    feature = ds.features.get("masks")
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.Image):
        ds = ds.cast_column("masks", datasets.Sequence(datasets.Image(decode=False)))
    return ds


def to_label_map(value: Any, root: Path | None, open_value: Any) -> np.ndarray:
    """One mask cell (encoded image, nested lists or array) → HxW integer labels (0 = background).

    An RGB(A) mask has no instance labels: any nonzero channel counts as one label.
    """
    if value is None:
        raise ImageError("mask is missing")
    value = open_value(value, root)
    array = mask_pixels(value)
    if array.ndim == 3:
        array = (array != 0).any(axis=2)
    if array.ndim != 2:
        raise ImageError(f"mask must be 2-D, got shape {array.shape}")
    return array.astype(np.int64) if array.dtype == bool else array


def objects_from_masks(masks: list[np.ndarray]) -> list[ObjectTruth]:
    """Seg-Zero's ground truth of each non-empty instance mask, in 840 space."""
    out = []
    for mask in masks:
        truth = instance_truth(mask)
        if truth is not None:
            out.append(truth)
    return out


def check_multi_row(
    example: dict, layout: str, root: Path | None, to_mask: Any, open_value: Any
) -> tuple[str | None, list[ObjectTruth]]:
    """(skip reason or None, objects in 840 space) of one raw row's ground truth."""
    if layout == "segzero":
        try:
            objects = parse_solution_multi(example["solution"] or "")
        except ValueError:
            return "unparsable solution", []
    elif layout == "mask":
        try:
            masks = instances_from_labels(to_label_map(example["mask"], root, open_value))
        except ValueError as exc:
            return ("too many instance labels" if "distinct" in str(exc) else "unreadable mask"), []
        except (ImageError, OSError):
            return "unreadable mask", []
        objects = objects_from_masks(masks)
    elif layout == "instances":
        cells = example["masks"]
        if not isinstance(cells, (list, tuple)):
            return "unreadable mask", []
        try:
            objects = objects_from_masks([to_mask(cell, root) for cell in cells])
        except (ImageError, OSError, ValueError):
            return "unreadable mask", []
    else:
        raise ValueError(f"unknown layout {layout!r}")
    if not objects:
        return "no target", []
    return None, objects


def synthetic_multi_dataset(rows: int, seed: int = 0, size: int = 224) -> datasets.Dataset:
    """`rows` multi-target queries of `segzero_edge.synthetic` (train split, no no-target ones)
    in the instance layout (image, text, masks): ground truth is then computed from the masks."""
    import datasets

    from segzero_edge.synthetic.multi_dataset import generate_multi_split

    records: dict[str, list] = {"image": [], "text": [], "masks": []}
    for sample in generate_multi_split("train", rows, seed, size, no_target_rate=0.0):
        row = sample.instance_row()
        for key in records:
            records[key].append(row[key])
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "masks": datasets.Sequence(datasets.Image()),
        }
    )
    return datasets.Dataset.from_dict(records, features=features)
