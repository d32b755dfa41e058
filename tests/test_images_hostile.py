"""Hostile and unusual images: decompression bombs are `ImageError`s (checked on the header,
before decoding), 16-bit / I / F images are converted, not clipped, EXIF orientation is
applied for paths, bytes and PIL images, and the pixel limits are configurable. Each test here
failed on the code before issue 13."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fakes import BoxSegmenter, ScriptedReasoner, answer_text
from PIL import Image, ImageOps

from segzero_edge.images import ImageError, load_image
from segzero_edge.pipeline import ReasoningPipeline


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that claims width×height 8-bit grey pixels but carries one row of data:
    a few hundred bytes that would decode to gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [30_000, 12_000, 9_000])  # above Pillow's 2x bomb limit / above its warning / above ours only
def test_decompression_bomb_is_an_image_error(tmp_path, side):
    data = png_header_only(side, side)
    with pytest.raises(ImageError, match=r"pixels|MAX_IMAGE_PIXELS|largest side"):
        load_image(data)
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    with pytest.raises(ImageError):
        load_image(path)


def test_bomb_through_the_pipeline_is_an_image_error_before_any_model_work():
    reasoner = ScriptedReasoner(answer_text([0, 0, 10, 10], [1, 1], [2, 2]))
    pipe = ReasoningPipeline(reasoner, BoxSegmenter())
    with pytest.raises(ImageError):
        pipe.segment(png_header_only(30_000, 30_000), "the thing")
    assert reasoner.encode_calls == 0


def test_pixel_limits_are_configurable():
    from segzero_edge.images import ImageLimits

    image = np.zeros((20, 30, 3), np.uint8)
    assert load_image(image, limits=ImageLimits(max_pixels=600)).shape == (20, 30, 3)
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(image, limits=ImageLimits(max_pixels=599))
    with pytest.raises(ImageError, match="max_side"):
        load_image(Image.fromarray(image), limits=ImageLimits(max_side=29))
    with pytest.raises(ValueError):
        ImageLimits(max_pixels=0)


def test_pipeline_takes_image_limits():
    from segzero_edge.images import ImageLimits

    reasoner = ScriptedReasoner(answer_text([0, 0, 10, 10], [1, 1], [2, 2]))
    pipe = ReasoningPipeline(reasoner, BoxSegmenter(), image_limits=ImageLimits(max_pixels=100))
    with pytest.raises(ImageError, match="max_pixels"):
        pipe.segment(np.zeros((20, 20, 3), np.uint8), "x")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_16_bit_png_is_scaled_not_saturated():
    values = np.linspace(0, 65535, 256 * 64).astype(np.uint16).reshape(64, 256)
    data = _png(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = load_image(data)
    expected = np.round(values / 257.0)
    assert np.abs(out[:, :, 0].astype(int) - expected).max() <= 1
    assert (out == 255).mean() < 0.01  # the old path made 99.5 % of the pixels 255


@pytest.mark.parametrize(
    "values,expected",
    [
        (np.array([[0, 100, 255]], np.int32), np.array([[0, 100, 255]])),  # convert("I") of an 8-bit image
        (np.array([[0, 32768, 65535]], np.int32), np.array([[0, 128, 255]])),  # 16-bit data in mode I
    ],
)
def test_mode_i_is_converted(values, expected):
    image = Image.fromarray(values, mode="I")
    assert np.array_equal(load_image(image)[:, :, 0], expected)


def test_mode_i_out_of_range_is_refused():
    with pytest.raises(ImageError, match="mode I"):
        load_image(Image.fromarray(np.array([[-5, 70000]], np.int32), mode="I"))


@pytest.mark.parametrize(
    "values,expected",
    [
        (np.array([[0.0, 0.5, 1.0]], np.float32), np.array([[0, 128, 255]])),  # unit floats, not crushed to 0/1
        (np.array([[0.0, 127.0, 255.0]], np.float32), np.array([[0, 127, 255]])),  # Pillow's convert("F") range
    ],
)
def test_mode_f_is_converted(values, expected):
    image = Image.fromarray(values, mode="F")
    assert np.array_equal(load_image(image)[:, :, 0], expected)


@pytest.mark.parametrize("bad", [np.nan, -1.0, 300.0])
def test_mode_f_out_of_range_is_refused(bad):
    with pytest.raises(ImageError, match="mode F"):
        load_image(Image.fromarray(np.array([[0.0, bad]], np.float32), mode="F"))


def oriented_jpeg(path: Path, orientation: int) -> Image.Image:
    """A 60×30 stored image with a bright top-left block, tagged with an EXIF orientation."""
    stored = np.zeros((30, 60, 3), np.uint8)
    stored[:10, :20] = 255
    image = Image.fromarray(stored)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return image


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_like_exif_transpose(tmp_path, orientation):
    path = tmp_path / "photo.jpg"
    oriented_jpeg(path, orientation)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert np.array_equal(load_image(path), expected)
    assert np.array_equal(load_image(path.read_bytes()), expected)
    with Image.open(path) as img:
        assert np.array_equal(load_image(img), expected)
    stored = load_image(path, exif=False)
    assert stored.shape == (30, 60, 3)
    assert expected.shape == ((60, 30, 3) if orientation in (6, 8) else (30, 60, 3))


def test_mask_comes_back_in_the_displayed_orientation(tmp_path):
    path = tmp_path / "photo.jpg"
    oriented_jpeg(path, 6)  # stored 60 wide, 30 high; shown 30 wide, 60 high
    pipe = ReasoningPipeline(ScriptedReasoner(answer_text([0, 0, 400, 400], [100, 100], [200, 200])), BoxSegmenter())
    result = pipe.segment(path, "the bright block")
    assert result.ok and result.mask.shape == (60, 30)
