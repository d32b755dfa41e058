"""Dataset adapters: local datasets → GRPO rows (conversational prompt, image, ground truth).

Two layouts are read from a `datasets.save_to_disk` dir, a parquet file, or a dir of parquet
files:

- Seg-Zero's training layout: `problem`, `solution` (`<box>(x1,y1),(x2,y2)</box><points>…`),
  `image` (already 840×840);
- any mask dataset (ReasonSeg's HF layout and the like): `image`, `text`, `mask`; the
  ground-truth box (`mask_bbox`) and Seg-Zero's two reference points are computed on the
  mask resized to 840×840 (nearest).

With `answer_format="multi"` the same layouts (plus `image`, `text`, `masks`) give Seg-Zero's
multi-object ground truth instead, as a `solution` column (`train/data_multi.py`).

One pass checks every row first: bad rows (unreadable image, empty mask, missing text,
unparsable solution) are skipped and counted, never fatal. The output rows carry
`prompt` (system + user turns; TRL inserts the image before the user text), `image`
(RGB PIL, resized to `image_size`, bilinear), `query`, `gt_bbox` and `gt_points` (scaled
from 840 to `image_size` space). Images are decoded and resized lazily, per batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from segzero_edge.geometry import mask_bbox, reference_points
from segzero_edge.images import ImageError, load_image
from segzero_edge.multi_truth import rescale_objects, solution_json
from segzero_edge.prompts import REASONER_SIZE, check_answer_format, training_user_text
from segzero_edge.rewards import parse_solution
from segzero_edge.train.mask_cells import mask_pixels

from .data_multi import INSTANCE_COLUMNS, check_multi_row, synthetic_multi_dataset, undecoded_masks

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger("segzero_edge.train")

SEGZERO_COLUMNS = ("problem", "solution", "image")
MASK_COLUMNS = ("image", "text", "mask")


@dataclass
class DataReport:
    """What the adapter read: rows seen, kept, and skipped by reason."""

    source: str
    layout: str
    seen: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())) or "none"
        return f"data {self.source} ({self.layout} layout): kept {self.kept} of {self.seen} rows; skipped: {reasons}"


# --- reading ------------------------------------------------------------------------------


def open_dataset(path: str | Path, split: str = "train") -> datasets.Dataset:
    """Open a local dataset: save_to_disk dir (Dataset or DatasetDict), parquet file, or a dir of parquet files."""
    import datasets

    p = Path(path)
    if p.is_file():
        if p.suffix != ".parquet":
            raise ValueError(f"{p}: expected a .parquet file or a dataset directory")
        return datasets.Dataset.from_parquet(str(p))
    if not p.is_dir():
        raise FileNotFoundError(
            f"dataset not found: {p} (give a save_to_disk dir, a parquet file or a dir of them)"
        )
    if (p / "dataset_dict.json").is_file():
        dd = datasets.load_from_disk(str(p))
        if split not in dd:
            raise ValueError(f"{p} has splits {sorted(dd)}, not {split!r}: set data_split")
        return dd[split]
    if (p / "state.json").is_file():
        return datasets.load_from_disk(str(p))
    files = sorted(p.rglob("*.parquet"))
    if not files:
        raise ValueError(f"{p} holds neither a save_to_disk dataset nor parquet files")
    in_split = [f for f in files if split in f.name]  # hub layout: data/train-00000-of-00001.parquet
    return datasets.Dataset.from_parquet([str(f) for f in (in_split or files)])


def detect_layout(columns: list[str], answer_format: str = "single") -> str:
    """'segzero', 'mask' (or, for multi, 'instances') from the column names; raises naming them otherwise."""
    if all(c in columns for c in SEGZERO_COLUMNS):
        return "segzero"
    if answer_format == "multi" and all(c in columns for c in INSTANCE_COLUMNS):
        return "instances"
    if all(c in columns for c in MASK_COLUMNS):
        return "mask"
    extra = f" or {list(INSTANCE_COLUMNS)} (instance masks)" if answer_format == "multi" else ""
    raise ValueError(
        f"cannot tell the dataset layout from its columns {columns}: expected {list(SEGZERO_COLUMNS)} "
        f"(Seg-Zero) or {list(MASK_COLUMNS)} (mask dataset){extra}"
    )


def _undecoded(ds: datasets.Dataset, columns: tuple[str, ...]) -> datasets.Dataset:
    """Image-typed columns as raw {"bytes", "path"} so that we decode them ourselves (and survive bad ones)."""
    import datasets

    for name in columns:
        if isinstance(ds.features.get(name), datasets.Image):
            ds = ds.cast_column(name, datasets.Image(decode=False))
    return ds


def _open_image_value(value: Any, root: Path | None) -> Any:
    """bytes / {"bytes", "path"} / path / PIL / array → something `load_image` or numpy reads."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        value = value.get("path")
        if value is None:
            raise ImageError("image entry has neither bytes nor a path")
    if isinstance(value, str) and root is not None and not Path(value).is_file() and (root / value).is_file():
        return root / value
    return value


def to_rgb(value: Any, root: Path | None = None) -> np.ndarray:
    """One image cell (bytes, {"bytes": ...}, path, PIL or array) → RGB uint8 HxWx3."""
    if value is None:
        raise ImageError("image is missing")
    return load_image(_open_image_value(value, root), exif=False)  # GT masks are on stored pixels


def to_mask(value: Any, root: Path | None = None) -> np.ndarray:
    """One mask cell (encoded image, nested lists or array) → bool HxW (nonzero = foreground)."""
    if value is None:
        raise ImageError("mask is missing")
    value = _open_image_value(value, root)
    array = mask_pixels(value)
    if array.ndim == 3:
        array = array.any(axis=2) if array.dtype == bool else (array > 0).any(axis=2)
    if array.ndim != 2:
        raise ImageError(f"mask must be 2-D, got shape {array.shape}")
    return array > 0 if array.dtype != bool else array


def mask_ground_truth(mask: np.ndarray) -> tuple[list[int], list[list[int]]] | None:
    """Seg-Zero's ground truth of a mask in 840 space: (bbox, [p1, p2]); None when the resized mask is empty."""
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((REASONER_SIZE, REASONER_SIZE), Image.NEAREST)
    m840 = np.asarray(img) > 127
    box = mask_bbox(m840)
    if box is None:
        return None
    p1, p2 = reference_points(m840)
    return list(box), [list(p1), list(p2)]


def _scale(values: Any, size: int) -> Any:
    """840-space coordinates (nested lists) → `size`-space integers."""
    if values is None or size == REASONER_SIZE:
        return values
    if isinstance(values, (list, tuple)):
        return [_scale(v, size) for v in values]
    return round(values * size / REASONER_SIZE)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):  # LISA-style rows keep several phrasings; Seg-Zero uses the first
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) else ""


# --- preparing ----------------------------------------------------------------------------


def _check_row(
    example: dict, layout: str, root: Path | None, validate_images: bool
) -> tuple[str | None, str, Any, Any]:
    """(skip reason or None, query, gt_bbox, gt_points) of one raw row, ground truth in 840 space."""
    query = _text(example["problem" if layout == "segzero" else "text"])
    if not query:
        return "missing text", query, None, None
    if layout == "segzero":
        try:
            gt = parse_solution(example["solution"] or "")
        except (ValueError, TypeError):
            return "unparsable solution", query, None, None
        gt_box = list(gt.bbox) if gt.bbox else None
        gt_points = [list(p) for p in gt.points] if gt.points else None
    else:
        try:
            truth = mask_ground_truth(to_mask(example["mask"], root))
        except (ImageError, OSError, ValueError):
            return "unreadable mask", query, None, None
        if truth is None:
            return "empty mask", query, None, None
        gt_box, gt_points = truth
    if validate_images:
        try:
            to_rgb(example["image"], root)
        except ImageError:
            return "unreadable image", query, None, None
    return None, query, gt_box, gt_points


class _RowTransform:
    """Per-batch transform: look the image up in the source, resize it, and build the prompt."""

    def __init__(
        self,
        images: datasets.Dataset,
        root: Path | None,
        size: int,
        system_prompt: str | None,
        answer_format: str = "single",
    ):
        self.images, self.root, self.size, self.system_prompt = images, root, size, system_prompt
        self.answer_format = answer_format

    def prompt(self, query: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        return [*turns, {"role": "user", "content": training_user_text(query, self.answer_format)}]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        images = []
        for row in batch["row"]:
            rgb = to_rgb(self.images[int(row)]["image"], self.root)
            images.append(Image.fromarray(rgb).resize((self.size, self.size), Image.BILINEAR))
        out = {"prompt": [self.prompt(q) for q in batch["query"]], "image": images, "query": list(batch["query"])}
        if self.answer_format == "multi":
            return {**out, "solution": list(batch["solution"])}
        return {**out, "gt_bbox": list(batch["gt_bbox"]), "gt_points": list(batch["gt_points"])}


def prepare_dataset(
    source: datasets.Dataset,
    *,
    layout: str = "auto",
    answer_format: str = "single",
    image_size: int = REASONER_SIZE,
    system_prompt: str | None = None,
    max_samples: int | None = None,
    validate_images: bool = True,
    root: Path | None = None,
    name: str = "dataset",
) -> tuple[datasets.Dataset, DataReport]:
    """Check every row, compute ground truth, and return GRPO rows (lazy images) plus a report.

    `answer_format="multi"` gives a `solution` column (Seg-Zero's multi-object JSON, in
    `image_size` space) instead of `gt_bbox` / `gt_points`, and the multi-object prompt.
    """
    import datasets
    from tqdm.auto import tqdm

    multi = check_answer_format(answer_format) == "multi"
    columns = {"segzero": SEGZERO_COLUMNS, "mask": MASK_COLUMNS, **({"instances": INSTANCE_COLUMNS} if multi else {})}
    if layout == "auto":
        layout = detect_layout(source.column_names, answer_format)
    elif layout not in columns:
        raise ValueError(f"layout must be auto or one of {sorted(columns)} for {answer_format} answers, got {layout!r}")
    needed = columns[layout]
    missing = [c for c in needed if c not in source.column_names]
    if missing:
        raise ValueError(f"{name}: the {layout} layout needs columns {list(needed)}; missing {missing}")
    raw = _undecoded(source.select_columns(list(needed)), ("image", "mask"))
    if layout == "instances":
        raw = undecoded_masks(raw)
    report = DataReport(source=name, layout=layout)
    truth = ("solution",) if multi else ("gt_bbox", "gt_points")
    rows: dict[str, list] = {"row": [], "query": [], **{key: [] for key in truth}}
    for index, example in enumerate(tqdm(raw, total=len(raw), desc="checking rows", leave=False)):
        if max_samples is not None and report.kept >= max_samples:
            break
        report.seen += 1
        if multi:
            reason, query, objects = _check_multi(example, layout, root, validate_images)
        else:
            reason, query, gt_box, gt_points = _check_row(example, layout, root, validate_images)
        if reason is not None:
            report.skipped[reason] += 1
            continue
        report.kept += 1
        rows["row"].append(index)
        rows["query"].append(query)
        if multi:
            rows["solution"].append(solution_json(rescale_objects(objects, image_size)))
        else:
            rows["gt_bbox"].append(_scale(gt_box, image_size))
            rows["gt_points"].append(_scale(gt_points, image_size))
    if report.kept == 0:
        raise ValueError(f"no usable rows: {report.summary()}")
    ground_truth = (
        {"solution": datasets.Value("string")}
        if multi
        else {
            "gt_bbox": datasets.Sequence(datasets.Value("int64")),
            "gt_points": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        }
    )
    features = datasets.Features({"row": datasets.Value("int64"), "query": datasets.Value("string"), **ground_truth})
    prepared = datasets.Dataset.from_dict(rows, features=features)
    transform = _RowTransform(raw.select_columns(["image"]), root, image_size, system_prompt, answer_format)
    prepared.set_transform(transform)
    return prepared, report


def _check_multi(example: dict, layout: str, root: Path | None, validate_images: bool) -> tuple[str | None, str, list]:
    """(skip reason or None, query, objects in 840 space) of one raw row, for multi answers."""
    query = _text(example["problem" if layout == "segzero" else "text"])
    if not query:
        return "missing text", query, []
    reason, objects = check_multi_row(example, layout, root, to_mask, _open_image_value)
    if reason is not None:
        return reason, query, []
    if validate_images:
        try:
            to_rgb(example["image"], root)
        except ImageError:
            return "unreadable image", query, []
    return None, query, objects


# --- synthetic rows and the config entry point -----------------------------------------------


def synthetic_mask_dataset(rows: int, seed: int = 0, size: int = 224) -> datasets.Dataset:
    """`rows` scenes of `segzero_edge.synthetic` (its train split) in the mask layout
    (image, text, mask): ground truth is then computed from the masks, as for any mask dataset."""
    import datasets

    from segzero_edge.synthetic.dataset import generate_split

    records: dict[str, list] = {"image": [], "text": [], "mask": []}
    for sample in generate_split("train", rows, seed, size):
        row = sample.row()
        for key in records:
            records[key].append(row[key])
    features = datasets.Features(
        {"image": datasets.Image(), "text": datasets.Value("string"), "mask": datasets.Image()}
    )
    return datasets.Dataset.from_dict(records, features=features)


def load_train_dataset(config: Any) -> tuple[datasets.Dataset, DataReport]:
    """The GRPO training rows for a `TrainConfig` (`data`, `data_format`, `data_split`, ...)."""
    answer_format = getattr(config, "answer_format", "single")
    if config.data == "synthetic":
        make = synthetic_multi_dataset if answer_format == "multi" else synthetic_mask_dataset
        source, root, name = make(config.synthetic_rows, seed=config.seed), None, "synthetic"
    else:
        path = Path(config.data)
        source, name = open_dataset(path, split=config.data_split), str(path)
        root = path if path.is_dir() else path.parent
    prepared, report = prepare_dataset(
        source,
        layout=config.data_format,
        answer_format=answer_format,
        image_size=config.image_size,
        system_prompt=config.system_prompt,
        max_samples=config.max_samples,
        validate_images=config.validate_images,
        root=root,
        name=name,
    )
    logger.info(report.summary())
    return prepared, report
