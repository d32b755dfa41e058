"""Dataset adapters: Seg-Zero and mask layouts, on-disk formats, ground truth in 840 space, bad rows."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from segzero_edge.geometry import mask_bbox, reference_points  # noqa: E402
from segzero_edge.prompts import SYSTEM_PROMPT, user_prompt  # noqa: E402
from segzero_edge.train.config import load_config  # noqa: E402
from segzero_edge.train.data import (  # noqa: E402
    detect_layout,
    load_train_dataset,
    open_dataset,
    prepare_dataset,
    synthetic_mask_dataset,
    to_mask,
)

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def segzero_rows() -> dict[str, list]:
    return {
        "problem": ["the red mug.", "the dog", "  ", "the cat", "the cup"],
        "solution": [
            "<box>(84,168),(420,630)</box><points>(200,300),(300,500)</points>",
            "<box>(0,0),(839,839)</box>",  # points missing: kept, scored 0 there as in Seg-Zero
            "<box>(1,1),(2,2)</box><points>(1,1),(2,2)</points>",  # missing text
            "no box here",  # unparsable
            "<box>(10,10),(20,20)</box><points>(12,12),(18,18)</points>",
        ],
        "image": [
            {"bytes": png(rgb(840, 840, 0)), "path": None},
            {"bytes": png(rgb(840, 840, 1)), "path": None},
            {"bytes": png(rgb(840, 840, 2)), "path": None},
            {"bytes": png(rgb(840, 840, 3)), "path": None},
            {"bytes": b"not an image", "path": None},  # unreadable
        ],
    }


def test_segzero_layout_ground_truth_prompt_and_skips():
    source = datasets.Dataset.from_dict(segzero_rows())
    rows, report = prepare_dataset(source, image_size=840, system_prompt=SYSTEM_PROMPT, name="t")
    assert report.layout == "segzero" and (report.seen, report.kept) == (5, 2)
    assert dict(report.skipped) == {"missing text": 1, "unparsable solution": 1, "unreadable image": 1}
    assert "kept 2 of 5 rows" in report.summary() and "1 unreadable image" in report.summary()
    first, second = rows[0], rows[1]
    assert first["gt_bbox"] == [84, 168, 420, 630] and first["gt_points"] == [[200, 300], [300, 500]]
    assert second["gt_bbox"] == [0, 0, 839, 839] and second["gt_points"] is None
    assert first["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt("the red mug.")},
    ]
    assert "'the red mug'" in first["prompt"][1]["content"]  # Seg-Zero's lower().strip(".")
    assert first["image"].size == (840, 840) and first["image"].mode == "RGB"
    assert np.array_equal(np.asarray(first["image"]), rgb(840, 840, 0))  # 840 in, 840 out: untouched


def test_ground_truth_is_scaled_to_the_image_size():
    source = datasets.Dataset.from_dict({k: v[:1] for k, v in segzero_rows().items()})
    rows, _ = prepare_dataset(source, image_size=112, system_prompt=None)
    row = rows[0]
    # 840 -> 112: x * 112 / 840, rounded
    assert row["gt_bbox"] == [11, 22, 56, 84] and row["gt_points"] == [[27, 40], [40, 67]]
    assert row["image"].size == (112, 112)
    assert row["prompt"] == [{"role": "user", "content": user_prompt("the red mug.")}]


def test_mask_layout_matches_seg_zero_reference_points():
    h, w = 300, 500
    mask = np.zeros((h, w), dtype=bool)
    mask[60:240, 100:175] = True  # a tall bar ...
    mask[200:240, 100:400] = True  # ... and a foot: two inscribed circles in different places
    empty = np.zeros((h, w), dtype=bool)
    source = datasets.Dataset.from_dict(
        {
            "image": [png(rgb(h, w)), png(rgb(h, w)), png(rgb(h, w)), None],
            "text": ["the boot", "ghost", None, "no image"],
            "mask": [
                png(mask.astype(np.uint8) * 255),
                png(empty.astype(np.uint8)),
                png(mask.astype(np.uint8)),
                png(mask),
            ],
        }
    )
    rows, report = prepare_dataset(source, image_size=840)
    assert report.layout == "mask"
    assert dict(report.skipped) == {"empty mask": 1, "missing text": 1, "unreadable image": 1}
    m840 = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((840, 840), Image.NEAREST)) > 127
    assert rows[0]["gt_bbox"] == list(mask_bbox(m840))
    assert rows[0]["gt_points"] == [list(p) for p in reference_points(m840)]
    assert rows[0]["gt_bbox"] == [
        168,
        168,
        671,
        671,
    ]  # by hand: x 100*1.68 .. 400*1.68-1, y 60*2.8 .. 240*2.8-1
    phrasings = source.select([0]).remove_columns("text").add_column("text", [["the boot", "other words"]])
    assert prepare_dataset(phrasings)[0][0]["query"] == "the boot"  # a list of phrasings: the first


def test_mask_adapter_agrees_with_the_synthetic_generator():
    from segzero_edge.synthetic.dataset import generate_split

    samples = list(generate_split("train", 4, 3, 224))
    source = datasets.Dataset.from_list([{k: s.row()[k] for k in ("image", "text", "mask")} for s in samples])
    rows, report = prepare_dataset(source)
    assert report.kept == 4
    for row, sample in zip(rows, samples, strict=True):
        assert row["gt_bbox"] == list(sample.bbox)
        assert row["gt_points"] == [list(p) for p in sample.points]


@pytest.mark.parametrize("kind", ["bytes", "pil", "path"])
def test_image_cells(tmp_path: Path, kind: str):
    image = rgb(56, 84, 5)
    (tmp_path / "im.png").write_bytes(png(image))
    cell = {"bytes": png(image), "pil": Image.fromarray(image), "path": "im.png"}[kind]
    source = datasets.Dataset.from_dict(
        {"problem": ["x"], "solution": ["<box>(0,0),(839,839)</box>"], "image": [cell]}
    )
    rows, report = prepare_dataset(source, image_size=112, root=tmp_path)
    expected = Image.fromarray(image).resize((112, 112), Image.BILINEAR)
    assert report.kept == 1 and np.array_equal(np.asarray(rows[0]["image"]), np.asarray(expected))


@pytest.mark.parametrize("fmt", ["save_to_disk", "dataset_dict", "parquet_file", "parquet_dir"])
def test_on_disk_formats(tmp_path: Path, fmt: str):
    ds = datasets.Dataset.from_dict({k: v[:2] for k, v in segzero_rows().items()})
    ds = ds.cast_column("image", datasets.Image())
    if fmt == "save_to_disk":
        ds.save_to_disk(str(tmp_path / "d"))
        path = tmp_path / "d"
    elif fmt == "dataset_dict":
        datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "d"))
        path = tmp_path / "d"
    elif fmt == "parquet_file":
        path = tmp_path / "train.parquet"
        ds.to_parquet(str(path))
    else:
        (tmp_path / "data").mkdir()
        ds.to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
        ds.select([0]).to_parquet(str(tmp_path / "data" / "test-00000-of-00001.parquet"))
        path = tmp_path
    source = open_dataset(path, split="train")
    assert len(source) == 2
    rows, report = prepare_dataset(source, image_size=224)
    assert report.kept == 2 and rows[1]["gt_bbox"] == [0, 0, 224, 224]
    assert rows[0]["image"].size == (224, 224)


def test_open_dataset_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a save_to_disk dataset nor parquet"):
        open_dataset(tmp_path / "empty")
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({"a": [1]})}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(ValueError, match=r"splits \['validation'\], not 'train'"):
        open_dataset(tmp_path / "dd")


def test_layout_errors():
    with pytest.raises(ValueError, match="cannot tell the dataset layout"):
        detect_layout(["image", "caption"])
    source = datasets.Dataset.from_dict(segzero_rows())
    with pytest.raises(ValueError, match="missing \\['text', 'mask'\\]"):
        prepare_dataset(source, layout="mask")
    bad = datasets.Dataset.from_dict({"problem": [""], "solution": ["x"], "image": [b"x"]})
    with pytest.raises(ValueError, match="no usable rows"):
        prepare_dataset(bad)


def test_mask_cells():
    m = np.zeros((4, 5), dtype=bool)
    m[1:3, 2:4] = True
    rgb_mask = np.repeat(m[:, :, None], 3, axis=2).astype(np.uint8) * 255
    for cell in (
        m,
        m.tolist(),
        png(m.astype(np.uint8) * 255),
        {"bytes": png(rgb_mask), "path": None},
        Image.fromarray(m),
    ):
        assert np.array_equal(to_mask(cell), m)


def test_max_samples_and_synthetic_config():
    c = load_config(CONFIGS / "tiny_cpu.yaml", ["synthetic_rows=3", "max_samples=2"])
    rows, report = load_train_dataset(c)
    assert len(rows) == 2 and report.seen == 2 and report.source == "synthetic"
    assert rows[0]["image"].size == (c.image_size, c.image_size)
    assert len(synthetic_mask_dataset(3, seed=1)) == 3
