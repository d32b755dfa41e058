"""What robot code relies on, through the shipped engines and the torch-free runtime: camera
frames in either channel order, streaming, a wall-clock budget, a repetition stop, settings
passed through `from_dir`, and one instance shared by threads. Runs in both test lanes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segzero_edge
from segzero_edge.images import ImageError, load_image

pytest.importorskip("onnxruntime")

MAX_NEW_TOKENS = 256


@pytest.fixture(scope="module")
def example() -> tuple[np.ndarray, str]:
    root = Path(segzero_edge.__file__).parent / "assets" / "examples"
    first = json.loads((root / "examples.json").read_text())["examples"][0]
    return np.asarray(Image.open(root / first["image"]).convert("RGB")), first["query"]


@pytest.fixture(scope="module")
def seg():
    from segzero_edge.runtime import ReasoningSegmenter

    try:
        return ReasoningSegmenter.from_dir(provider="cpu", max_new_tokens=MAX_NEW_TOKENS)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


# -- camera frames ---------------------------------------------------------------------------


def test_bgr_arrays_are_read_as_rgb_when_told():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert np.array_equal(load_image(bgr, channel_order="bgr"), rgb)
    assert np.array_equal(load_image(rgb, channel_order="rgb"), rgb)
    rgba = np.dstack([rgb, np.full((5, 7), 255, np.uint8)])
    bgra = np.dstack([bgr, rgba[:, :, 3]])
    assert np.array_equal(load_image(bgra, channel_order="bgr"), load_image(rgba))
    gray = rgb[:, :, 0]
    assert np.array_equal(load_image(gray, channel_order="bgr"), load_image(gray))  # one channel: no order
    assert not np.array_equal(load_image(bgr), rgb)  # the default is RGB: a BGR frame needs the keyword


def test_bgr_is_refused_where_pillow_decodes(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    for image in (path, str(path), path.read_bytes(), Image.open(path)):
        with pytest.raises(ImageError, match="applies to numpy arrays"):
            load_image(image, channel_order="bgr")
    with pytest.raises(ImageError, match=r"channel_order must be one of \('rgb', 'bgr'\), got 'BGR'"):
        load_image(np.zeros((4, 4, 3), np.uint8), channel_order="BGR")


def test_an_opencv_frame_gives_the_rgb_answer(seg, example):
    image, query = example
    rgb = seg.segment(image, query)
    bgr = seg.segment(np.ascontiguousarray(image[:, :, ::-1]), query, channel_order="bgr")
    assert rgb.ok and bgr.ok
    assert (bgr.bbox, bgr.points, bgr.answer_text) == (rgb.bbox, rgb.points, rgb.answer_text)
    assert np.array_equal(bgr.mask, rgb.mask)
    many = seg.segment_many(np.ascontiguousarray(image[:, :, ::-1]), [query], channel_order="bgr")
    assert many[0].bbox == rgb.bbox
