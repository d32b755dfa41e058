"""Evaluation sets from local paths: ReasonSeg / RefCOCO in Seg-Zero's Hugging Face layout,
and LISA's original ReasonSeg layout (jpg + json polygons).

Every reader yields `EvalSample`s with the image as RGB uint8 and the ground truth as a
bool mask (plus an optional ignore mask for LISA's own semantics).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from .images import load_image

IgnoreMode = Literal["segzero", "lisa"]


@dataclass
class EvalSample:
    """One query with its ground truth. `sample_id` is unique within a set and stable
    across runs (it keys resumable result files)."""

    sample_id: str
    image: np.ndarray  # HxWx3 uint8
    query: str
    mask: np.ndarray  # HxW bool
    ignore: np.ndarray | None = None  # HxW bool, LISA semantics only
    bbox: tuple[float, float, float, float] | None = None  # the data's `bbox` (x1, y1, x2, y2), if any


def _gt_box(value: Any, where: str) -> tuple[float, float, float, float] | None:
    """The optional `bbox` column Seg-Zero's evaluation reads for its box metric."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(f"{where}: bbox must be [x1, y1, x2, y2] numbers or empty, got {value!r}")
    return tuple(value)  # type: ignore[return-value]


#: Files `datasets.save_to_disk` leaves in a dataset (or DatasetDict) folder.
_SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


class DataError(ValueError):
    """A dataset path or row that cannot be read; the message says which and why."""


def _decode_image_cell(cell: Any, what: str) -> Image.Image:
    if isinstance(cell, Image.Image):
        return cell
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return Image.open(io.BytesIO(cell["bytes"]))
        if cell.get("path"):
            return Image.open(cell["path"])
    if isinstance(cell, (bytes, bytearray)):
        return Image.open(io.BytesIO(bytes(cell)))
    raise DataError(f"cannot decode {what}: unsupported cell type {type(cell).__name__}")


def decode_mask_cell(cell: Any) -> np.ndarray:
    """A mask cell as HxW bool: an Image feature (struct/bytes/PIL) or nested lists/arrays."""
    if isinstance(cell, (list, np.ndarray)):
        array = np.array(cell)
    else:
        array = np.array(_decode_image_cell(cell, "mask"))
    if array.ndim == 3:  # an RGB-saved mask: any channel set counts
        array = array.any(axis=2)
    if array.ndim != 2:
        raise DataError(f"mask must be 2-D, got shape {array.shape}")
    return array.astype(bool)


def _rows(path: Path) -> Iterator[dict]:
    """Rows of a parquet file, a directory of parquet files, or a `save_to_disk` directory."""
    if path.is_dir() and any((path / name).is_file() for name in _SAVED_MARKERS):
        try:
            from datasets import load_from_disk
        except ImportError as exc:
            raise DataError(f"{path} is a saved Hugging Face dataset: pip install datasets to read it") from exc
        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):  # a DatasetDict: take the single split, or refuse to guess
            splits = list(dataset.keys())
            if len(splits) != 1:
                raise DataError(f"{path} holds splits {splits}: point --data at one of them")
            dataset = dataset[splits[0]]
        dataset = dataset.cast_column("image", _no_decode_image()) if "image" in dataset.features else dataset
        yield from dataset
        return
    files = sorted(path.glob("**/*.parquet")) if path.is_dir() else [path]
    if not files or not all(f.suffix == ".parquet" for f in files):
        raise DataError(f"{path}: expected a .parquet file, a folder of them, or a save_to_disk folder")
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError("reading parquet needs pyarrow: pip install pyarrow") from exc
    for file in files:
        table = pq.ParquetFile(file)
        for batch in table.iter_batches(batch_size=64):
            yield from batch.to_pylist()


def _no_decode_image() -> Any:
    from datasets import Image as HFImage

    return HFImage(decode=False)


def read_hf_layout(path: Path, limit: int | None = None) -> Iterator[EvalSample]:
    """ReasonSeg / RefCOCO in Seg-Zero's HF layout: `image, text, mask, image_id, ann_id, …`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"dataset not found: {path}")
    for index, row in enumerate(_rows(path)):
        if limit is not None and index >= limit:
            return
        missing = {"image", "text", "mask"} - set(row)
        if missing:
            raise DataError(f"{path} row {index} lacks columns {sorted(missing)} (has {sorted(row)})")
        sample_id = f"{row.get('image_id', index)}:{row.get('ann_id', index)}"
        bbox = _gt_box(row.get("bbox"), f"{path} row {index}")
        image = load_image(_decode_image_cell(row["image"], "image"), exif=False)  # GT is on stored pixels
        mask = decode_mask_cell(row["mask"])
        if mask.shape != image.shape[:2]:
            raise DataError(f"{path} row {index}: mask {mask.shape} does not match image {image.shape[:2]}")
        text = row["text"][0] if isinstance(row["text"], list) else row["text"]
        yield EvalSample(sample_id=sample_id, image=image, query=str(text), mask=mask, bbox=bbox)


def _fill_polygons(polygons: list[list[list[float]]], height: int, width: int) -> np.ndarray:
    """Fill polygons with their 1-px outlines, as Seg-Zero's cv2.polylines + fillPoly do.

    cv2 is used when installed (bit-exact with Seg-Zero); otherwise PIL's rasteriser, which
    can differ on boundary pixels.
    """
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        canvas = np.zeros((height, width), dtype=np.uint8)
        for points in polygons:
            pts = np.array([points], dtype=np.int32)
            cv2.polylines(canvas, pts, True, 1, 1)
            cv2.fillPoly(canvas, pts, 1)
        return canvas.astype(bool)
    from PIL import ImageDraw

    canvas_img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas_img)
    for points in polygons:
        xy = [(int(x), int(y)) for x, y in points]  # cv2 truncates to int32 as well
        if len(xy) >= 2:
            draw.polygon(xy, fill=1, outline=1)
    return np.array(canvas_img, dtype=bool)


def lisa_masks(annotation: dict, height: int, width: int, mode: IgnoreMode = "segzero") -> tuple[np.ndarray, np.ndarray | None]:
    """Ground truth from a LISA json. `segzero`: drop "flag" polygons, count "ignore" ones
    as foreground. `lisa`: target polygons only, with "ignore" pixels returned separately."""
    shapes = annotation.get("shapes", [])
    target, ignore = [], []
    for shape in shapes:
        label = str(shape.get("label", "")).lower()
        if label == "flag":
            continue
        (ignore if "ignore" in label else target).append(shape["points"])
    if mode == "segzero":
        return _fill_polygons(target + ignore, height, width), None
    ignore_mask = _fill_polygons(ignore, height, width) if ignore else np.zeros((height, width), bool)
    return _fill_polygons(target, height, width) & ~ignore_mask, ignore_mask


def read_lisa_layout(path: Path, limit: int | None = None, mode: IgnoreMode = "segzero") -> Iterator[EvalSample]:
    """LISA's ReasonSeg folder: `name.jpg` + `name.json` with `text` and polygon `shapes`.
    Seg-Zero uses `text[0]`."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"LISA layout must be a folder of jpg + json files: {path}")
    annotations = sorted(path.glob("*.json"))
    if not annotations:
        raise DataError(f"no .json annotations in {path}")
    for index, ann_path in enumerate(annotations):
        if limit is not None and index >= limit:
            return
        image_path = ann_path.with_suffix(".jpg")
        if not image_path.is_file():
            raise DataError(f"{ann_path.name} has no image {image_path.name}")
        annotation = json.loads(ann_path.read_text())
        texts = annotation.get("text") or []
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise DataError(f"{ann_path} has no text")
        image = load_image(image_path, exif=False)  # GT polygons are on stored pixels
        mask, ignore = lisa_masks(annotation, image.shape[0], image.shape[1], mode)
        yield EvalSample(sample_id=ann_path.stem, image=image, query=texts[0], mask=mask, ignore=ignore)


DataFormat = Literal["auto", "hf", "lisa", "refcoco"]


def read_eval_set(path: Path, fmt: DataFormat = "auto", limit: int | None = None, ignore_mode: IgnoreMode = "segzero") -> Iterator[EvalSample]:
    """Pick the reader: a folder of .json annotations is LISA's layout, anything else the HF one
    (RefCOCO-family eval sets use the HF layout too)."""
    path = Path(path)
    if fmt == "auto":
        saved = any((path / name).is_file() for name in _SAVED_MARKERS)
        fmt = "lisa" if path.is_dir() and not saved and any(path.glob("*.jpg")) else "hf"
    if fmt == "lisa":
        return read_lisa_layout(path, limit, ignore_mode)
    return read_hf_layout(path, limit)
