"""numpy Qwen2-VL image preprocessing vs transformers' Qwen2VLImageProcessorPil."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segzero_edge.graphs.qwen_preprocess import (
    QwenImageConfig,
    num_image_tokens,
    preprocess_image,
    smart_resize,
)

hf_ip = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")


def _hf(config: QwenImageConfig):
    return hf_ip.Qwen2VLImageProcessorPil(
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        patch_size=config.patch_size,
        temporal_patch_size=config.temporal_patch_size,
        merge_size=config.merge_size,
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
    )


@pytest.mark.parametrize(
    "hw",
    [(840, 840), (37, 53), (481, 640), (1000, 333), (28, 28), (300, 2000), (841, 839)],
)
def test_pixel_values_match_transformers(hw):
    config = QwenImageConfig()
    rng = np.random.default_rng(sum(hw))
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref = _hf(config)(images=Image.fromarray(image), return_tensors="np")
    pixel_values, grid = preprocess_image(image, config)
    assert grid.dtype == np.int64 and grid.shape == (1, 3)
    np.testing.assert_array_equal(grid, ref["image_grid_thw"])
    assert pixel_values.dtype == np.float32 and pixel_values.shape == ref["pixel_values"].shape
    assert np.abs(pixel_values - ref["pixel_values"]).max() <= 1e-5


def test_downscale_with_small_max_pixels_matches():
    config = QwenImageConfig(max_pixels=28 * 28 * 64)  # forces a bicubic downscale of 840x840
    image = np.random.default_rng(1).integers(0, 256, (840, 840, 3), dtype=np.uint8)
    ref = _hf(config)(images=Image.fromarray(image), return_tensors="np")
    pixel_values, grid = preprocess_image(image, config)
    np.testing.assert_array_equal(grid, [[1, 16, 16]])
    np.testing.assert_array_equal(grid, ref["image_grid_thw"])
    assert np.abs(pixel_values - ref["pixel_values"]).max() <= 1e-5


def test_segzero_840_grid_and_token_count():
    image = np.zeros((840, 840, 3), dtype=np.uint8)
    pixel_values, grid = preprocess_image(image)
    assert pixel_values.shape == (3600, 1176)
    np.testing.assert_array_equal(grid, [[1, 60, 60]])
    assert num_image_tokens(grid) == 900


def test_patch_layout_is_merge_block_major():
    # a ramp image tells which pixel lands in which row/column of pixel_values
    config = QwenImageConfig(image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0), do_resize=False)
    h, w = 56, 84
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[..., 0] = (np.arange(h)[:, None] * 2) % 256  # red encodes the row
    image[..., 1] = (np.arange(w)[None, :] * 3) % 256  # green encodes the column
    pv, grid = preprocess_image(image, config)
    np.testing.assert_array_equal(grid, [[1, 4, 6]])
    row = pv[:, 0] * 255 / 2  # channel 0, t 0, (0, 0) pixel of each patch
    col = pv[:, 2 * 14 * 14] * 255 / 3  # channel 1, t 0, (0, 0) pixel
    patch_rows, patch_cols = np.rint(row / 14).astype(int), np.rint(col / 14).astype(int)
    # first merge block is patches (0,0),(0,1),(1,0),(1,1); the next block starts at column 2
    assert list(zip(patch_rows[:6], patch_cols[:6], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3)]
    # both temporal copies are identical
    per_patch = pv.reshape(-1, 3, 2, 14 * 14)
    np.testing.assert_array_equal(per_patch[:, :, 0], per_patch[:, :, 1])


def test_smart_resize_matches_transformers():
    rng = np.random.default_rng(2)
    sizes = [(int(a), int(b)) for a, b in rng.integers(10, 4000, size=(300, 2))] + [(840, 840), (14, 2000)]
    for min_pixels, max_pixels in [(56 * 56, 28 * 28 * 1280), (56 * 56, 28 * 28 * 16384), (100_000, 200_000)]:
        for h, w in sizes:
            if max(h, w) / min(h, w) > 200:
                continue
            assert smart_resize(h, w, 28, min_pixels, max_pixels) == hf_ip.smart_resize(
                h, w, 28, min_pixels, max_pixels
            ), (h, w, min_pixels, max_pixels)


def test_config_from_pretrained_matches_tiny_processor(tiny_models):
    config = QwenImageConfig.from_pretrained(tiny_models.reasoner)
    ref_proc = hf_ip.Qwen2VLImageProcessorPil.from_pretrained(tiny_models.reasoner)
    assert config.min_pixels == ref_proc.size["shortest_edge"]
    assert config.max_pixels == ref_proc.size["longest_edge"]
    image = np.random.default_rng(3).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    ref = ref_proc(images=Image.fromarray(image), return_tensors="np")
    pixel_values, grid = preprocess_image(image, config)
    np.testing.assert_array_equal(grid, ref["image_grid_thw"])
    assert np.abs(pixel_values - ref["pixel_values"]).max() <= 1e-5
    assert QwenImageConfig.from_dict(config.to_dict()) == config


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_image(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="RGB uint8"):
        preprocess_image(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000)
    with pytest.raises(ValueError, match="min_pixels"):
        QwenImageConfig(min_pixels=10, max_pixels=5)
