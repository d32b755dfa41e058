"""Load and normalise user images: path, bytes, PIL or numpy → RGB uint8 HxWx3.

Robots hand us whatever their camera stack produces; this is the one place that turns
it into the array every stage expects, or says clearly why it cannot.

- **Limits.** `ImageLimits(max_pixels, max_side)` is checked on the header, before any pixel
  is decoded, so a decompression bomb (a small file that decodes to gigapixels) is an
  `ImageError`, never an out-of-memory kill. Defaults: 80 M pixels, 16,384 px a side; pass
  `limits=` (or `ReasoningPipeline(image_limits=)`) to change them. Pillow's own bomb guard
  (`PIL.Image.MAX_IMAGE_PIXELS`, 89.5 M pixels) still applies above ours: raising our
  limit past it means raising Pillow's too.
- **Orientation.** Paths, bytes and PIL images are turned upright as
  `PIL.ImageOps.exif_transpose` does (the EXIF Orientation tag, as every viewer shows the
  photo), so masks come back in the displayed orientation. Arrays carry no EXIF and are
  taken as given; `exif=False` keeps the stored orientation (evaluation data, whose ground
  truth is drawn on the stored pixels).
- **Bit depth.** 16-bit greyscale (`I;16*`) is scaled to 8 bits (v/257), not clipped. Mode
  `I` (32-bit int) is read as 8-bit when its values fit 0..255 and as 16-bit when they fit
  0..65535 (how Pillow's `convert("I")` and old 16-bit PNG readers fill it); mode `F`
  (float) as [0, 1] when its values fit there, else as Pillow's 0..255. Anything else
  (negative, larger, NaN) is an `ImageError`, not a silently crushed image.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default largest accepted side; beyond this a decode would exhaust memory on a Jetson.
MAX_SIDE = 16384
#: Default largest accepted pixel count: 80 MP (240 MB as RGB uint8; masks and the
#: segmenter's full-size upsampling add ~20 bytes a pixel on top). Below Pillow's own bomb
#: warning (89.5 MP), so Pillow never warns about an image this package accepts.
MAX_PIXELS = 80_000_000
_EXIF_ORIENTATION = 0x0112
# What a malformed file can raise from inside Pillow's decoders and EXIF reader.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error,
                  Image.DecompressionBombError)


class ImageError(ValueError):
    """An input that is not a usable image; the message says why."""


@dataclass(frozen=True)
class ImageLimits:
    """Largest image accepted, checked before decoding."""

    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_side"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageLimits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ImageLimits()

ImageLike = Any  # str | Path | bytes | PIL.Image.Image | np.ndarray


def load_image(image: ImageLike, *, limits: ImageLimits | None = None, exif: bool = True) -> np.ndarray:
    """Return an RGB uint8 array of shape HxWx3 (a new, C-contiguous array).

    Accepts a path, raw encoded bytes, a PIL image (any mode), or a numpy array that is
    HxW (grayscale), HxWx1, HxWx3 (RGB) or HxWx4 (RGBA; alpha is composited on black).
    Float arrays must be in [0, 1], integer arrays in [0, 255]. `exif` turns paths, bytes
    and PIL images upright by their EXIF orientation. Raises `ImageError` otherwise.
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"image file not found (or not a regular file): {path}")
        return _decode(lambda: Image.open(path), f"image {path}", limits, exif)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return _decode(lambda: Image.open(io.BytesIO(data)), f"image bytes ({len(data)} bytes)", limits, exif)
    if isinstance(image, Image.Image):
        _check_size(image.size, limits)
        try:
            return _from_pil(_upright(image) if exif else image)
        except _DECODE_ERRORS as exc:
            raise ImageError(f"cannot decode PIL image: {_reason(exc)}") from exc
    if isinstance(image, np.ndarray):
        return _from_array(image, limits)
    raise ImageError(f"unsupported image type {type(image).__name__}: pass a path, bytes, PIL image or HxWx3 uint8 array")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _decode(opener, what: str, limits: ImageLimits, exif: bool) -> np.ndarray:
    try:
        with opener() as img:
            _check_size(img.size, limits)
            return _from_pil(_upright(img) if exif else img)
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"cannot decode {what}: {_reason(exc)} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS; "
            f"this package's limit is {limits.max_pixels} pixels)"
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"cannot decode {what}: {_reason(exc)}") from exc


def _upright(img: Image.Image) -> Image.Image:
    """`ImageOps.exif_transpose` when the EXIF orientation is not already upright (it copies
    the image otherwise, which a 50 MP frame does not need)."""
    orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def _check_size(size: tuple[int, int], limits: ImageLimits = DEFAULT_LIMITS) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"image is empty ({width}x{height})")
    if max(width, height) > limits.max_side:
        raise ImageError(
            f"image is {width}x{height}; the largest side accepted is {limits.max_side} px "
            "(ImageLimits.max_side): downscale it first"
        )
    if width * height > limits.max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels} "
            "(ImageLimits.max_pixels): downscale it first, or raise the limit if this is intended"
        )


def _scaled_gray(img: Image.Image) -> np.ndarray:
    """uint8 HxW from a 16-bit, 32-bit int or float single-channel image (see the module doc)."""
    array = np.asarray(img)
    if img.mode.startswith("I;16"):
        wide = array.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if img.mode == "F":
        if not np.isfinite(array).all():
            raise ImageError("mode F image holds NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ImageError(f"mode F image values span [{low:g}, {high:g}]; expected [0, 1] or [0, 255]")
        return np.round(array * 255 if high <= 1 else array).astype(np.uint8)
    # mode I: 32-bit signed
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 65535:
        raise ImageError(f"mode I image values span [{low}, {high}]; expected 0..255 or 0..65535")
    if high <= 255:
        return array.astype(np.uint8)
    return ((array.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


def _from_pil(img: Image.Image) -> np.ndarray:
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        gray = _scaled_gray(img)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode in ("RGBA", "LA", "P", "PA", "La", "RGBa"):
        # composite transparency on black rather than dropping it to arbitrary RGB values
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _from_array(array: np.ndarray, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size((array.shape[1], array.shape[0]), limits)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageError("float image arrays must hold finite values in [0, 1]")
        array = np.round(array * 255).astype(np.uint8)
    elif not np.issubdtype(array.dtype, np.integer):
        raise ImageError(f"image arrays must be uint8, integer, bool or float, got {array.dtype}")
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
