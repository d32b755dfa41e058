"""Load and normalise user images: path, bytes, PIL or numpy → RGB uint8 HxWx3.

Robots hand us whatever their camera stack produces; this is the one place that turns
it into the array every stage expects, or says clearly why it cannot.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Largest accepted side; beyond this a decode would exhaust memory on a Jetson.
MAX_SIDE = 16384


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


ImageLike = Any  # str | Path | bytes | PIL.Image.Image | np.ndarray


def _from_pil(img: Image.Image) -> np.ndarray:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        # composite transparency on black rather than dropping it to arbitrary RGB values
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_image(image: ImageLike) -> np.ndarray:
    """Return an RGB uint8 array of shape HxWx3 (a new, C-contiguous array).

    Accepts a path, raw encoded bytes, a PIL image (any mode), or a numpy array that is
    HxW (grayscale), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA; alpha is composited on black).
    Float arrays must be in [0, 1]. Raises `ImageError` otherwise.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        try:
            with Image.open(path) as img:
                _check_size(img.size)
                return _from_pil(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ImageError(f"cannot decode image {path}: {exc}") from exc
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            with Image.open(io.BytesIO(bytes(image))) as img:
                _check_size(img.size)
                return _from_pil(img)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ImageError(f"cannot decode image bytes ({len(image)} bytes): {exc}") from exc
    if isinstance(image, Image.Image):
        _check_size(image.size)
        try:
            return _from_pil(image)
        except OSError as exc:
            raise ImageError(f"cannot decode PIL image: {exc}") from exc
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise ImageError(f"unsupported image type {type(image).__name__}: pass a path, bytes, PIL image or HxWx3 uint8 array")


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"image is empty ({width}x{height})")
    if max(width, height) > MAX_SIDE:
        raise ImageError(f"image is {width}x{height}; the largest side accepted is {MAX_SIDE} px: downscale it first")


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size((array.shape[1], array.shape[0]))
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("float image arrays must hold finite values in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ImageError(f"{array.dtype} image values must lie in [0, 255]")
        array = array.astype(np.uint8)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        return np.ascontiguousarray(np.round(array[:, :, :3] * alpha).astype(np.uint8))
    return np.ascontiguousarray(array)


def to_pil(image: np.ndarray) -> Image.Image:
    """RGB uint8 HxWx3 array → PIL image (no copy semantics promised)."""
    return Image.fromarray(np.ascontiguousarray(image))
