"""SAM2's image preprocessing, prompt encoding and mask postprocessing in numpy.

One implementation, used by the PyTorch reference and every runtime, so parity checks test
the graphs and not two copies of this code.

What SAM2 does (Meta's `SAM2Transforms`, which Seg-Zero's `SAM2ImagePredictor` uses):
- image: `ToTensor()` (float in [0, 1]) → `Resize((1024, 1024))` → ImageNet `Normalize`.
  The resize keeps no aspect ratio and, on a float tensor, is torch's antialiased bilinear
  (`F.interpolate(..., mode="bilinear", antialias=True, align_corners=False)`, PIL's
  triangle filter, which is what we run: PIL on float32 images). transformers' fast `Sam2ImageProcessor` resizes the uint8 image and
  rounds to uint8 first, which differs by at most 0.5/255 per pixel; we follow Meta.
- prompts: original pixels → 1024 space by `x * 1024 / W`, `y * 1024 / H`.
- masks: the 256×256 logits are bilinearly interpolated straight to (H, W)
  (`align_corners=False`, no antialias) and thresholded at 0. SAM1 upsampled to 1024 and
  cropped the padding; SAM2 has no padding, so there is nothing to crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .segmenter_io import (
    IMAGE_MEAN,
    IMAGE_SIZE,
    IMAGE_STD,
    LABEL_BOX_BOTTOM_RIGHT,
    LABEL_BOX_TOP_LEFT,
    LABEL_PAD,
    LABEL_POSITIVE,
    MASK_THRESHOLD,
)


def check_image(image: np.ndarray) -> tuple[int, int]:
    """(H, W) of an RGB uint8 HxWx3 image; ValueError for anything else."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (RGB uint8 HxWx3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(
            f"image must be RGB HxWx3, got shape {image.shape}; load it with segzero_edge.images.load_image"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8, got {image.dtype}; load it with segzero_edge.images.load_image"
        )
    return int(image.shape[0]), int(image.shape[1])


def resize_antialiased(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of a float HxWxC array to height×width×C float32.

    PIL's BILINEAR on 32-bit float images: a triangle filter whose support widens by the
    shrink factor, the same algorithm torch's `antialias=True` reimplements (they agree to
    ~2e-7 on [0, 1] data); no rounding to uint8 on the way.
    """
    from PIL import Image

    x = np.asarray(image, dtype=np.float32)
    if x.shape[:2] == (height, width):
        return x
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(x[:, :, c])).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(x.shape[2])
    ]
    return np.stack(channels, axis=-1)


def preprocess_image(
    image: np.ndarray,
    size: int = IMAGE_SIZE,
    mean: Sequence[float] = IMAGE_MEAN,
    std: Sequence[float] = IMAGE_STD,
) -> np.ndarray:
    """RGB uint8 HxWx3 → normalised pixel_values [1, 3, size, size] float32."""
    check_image(image)
    resized = resize_antialiased(image.astype(np.float32) / np.float32(255.0), size, size)
    mean_ = np.asarray(mean, dtype=np.float32)
    std_ = np.asarray(std, dtype=np.float32)
    pixels = (resized - mean_) / std_
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def check_box(box: Sequence[float]) -> np.ndarray:
    """A box `(x1, y1, x2, y2)` as float64 [4]; ValueError for a wrong shape or non-finite value."""
    arr = np.asarray(box, dtype=np.float64) if _is_numeric(box) else None
    if arr is None or arr.shape != (4,):
        raise ValueError(f"box must be 4 numbers (x1, y1, x2, y2) in image pixels, got {box!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"box has a non-finite coordinate: {box!r}")
    return arr


def check_points(points: Sequence[Sequence[float]]) -> np.ndarray:
    """Points `[(x, y), ...]` as float64 [K, 2] (K may be 0); ValueError otherwise."""
    arr = np.asarray(points, dtype=np.float64) if _is_numeric(points) else None
    if arr is not None and arr.size == 0:
        return np.zeros((0, 2))
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"points must be a list of (x, y) pairs in image pixels, got {points!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"points have a non-finite coordinate: {points!r}")
    return arr


def _is_numeric(value: object) -> bool:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.dtype != object


def clip_prompt(
    box: np.ndarray, points: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Order the box corners and clip box and points into the image ([0, W-1] × [0, H-1]),
    as `segzero_edge.geometry.clip_box` / `clip_point` do, without rounding.

    A degenerate box (zero width or height) is kept as it is: SAM2 embeds its two corners
    like any box and the points carry the prompt, which is what Seg-Zero's predictor call did.
    """
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    limit = np.array([width - 1, height - 1, width - 1, height - 1], dtype=np.float64)
    clipped = np.clip(np.array([x1, y1, x2, y2]), 0.0, limit)
    pts = np.clip(points, 0.0, np.array([width - 1, height - 1], dtype=np.float64))
    return clipped, pts


def to_model_space(xy: np.ndarray, height: int, width: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """Original pixels [..., 2] → `size` space: x * size / W, y * size / H (float32, as SAM2)."""
    out = np.asarray(xy, dtype=np.float32).copy()
    out[..., 0] = out[..., 0] * np.float32(size / width)
    out[..., 1] = out[..., 1] * np.float32(size / height)
    return out


def prompt_arrays(
    box: Sequence[float], points: Sequence[Sequence[float]], height: int, width: int, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Seg-Zero's prompt (one box + positive points, original pixels) as decoder inputs.

    Returns point_coords [1, K+3, 2] float32 in `size` space and point_labels [1, K+3]
    float32, ordered as transformers' `Sam2PromptEncoder` orders them for
    `input_points` + `input_boxes`: the K points (label 1), the box corners (2, 3), then
    one padding point (0, 0) with label -1.
    """
    clipped_box, pts = clip_prompt(check_box(box), check_points(points), height, width)
    xy = np.concatenate([pts, clipped_box.reshape(2, 2), np.zeros((1, 2))], axis=0)
    coords = to_model_space(xy, height, width, size)
    # The padding point stays at (0, 0): it is never scaled (its embedding is replaced anyway).
    coords[-1] = 0.0
    labels = np.array(
        [LABEL_POSITIVE] * len(pts) + [LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT, LABEL_PAD],
        dtype=np.float32,
    )
    return coords[None], labels[None]


def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's CPU `upsample_bilinear2d` taps (align_corners=False, no antialias), with its
    roundings: a float32 scale, the source index in double, stored as float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.float64(scale) * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)


def upsample_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of mask logits [K, h, w] to [K, height, width] float32, as
    `F.interpolate(mode="bilinear", align_corners=False)` (transformers' post_process_masks)."""
    if logits.ndim != 3:
        raise ValueError(f"logits must be [K, h, w], got shape {logits.shape}")
    x = logits.astype(np.float32, copy=False)
    # Along x first (cheap: h rows), then y, the order torch's kernel mixes the four taps in.
    x0, x1, fx = _linear_taps(x.shape[2], width)
    cols = x[:, :, x0] * (1 - fx)
    cols += x[:, :, x1] * fx
    y0, y1, fy = _linear_taps(x.shape[1], height)
    out = cols[:, y0, :]
    out *= (1 - fy)[None, :, None]
    far = cols[:, y1, :]
    far *= fy[None, :, None]
    out += far
    return out


def masks_from_logits(
    logits: np.ndarray, height: int, width: int, threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """Low-res logits [K, h, w] → boolean masks [K, height, width] at the original size."""
    return upsample_logits(logits, height, width) > threshold
