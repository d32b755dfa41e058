"""A dataset's mask cell (already opened: encoded bytes, a path, a PIL image, nested lists or
an array) → its pixel array, as stored. `data.to_mask` (foreground) and
`data_multi.to_label_map` (instance labels) each read the pixels their own way."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def mask_pixels(value: Any) -> np.ndarray:
    """The stored pixels of one opened mask cell (2-D, or 3-D for RGB(A) masks)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(value))) as img:
            return np.asarray(img)
    if isinstance(value, (str, Path)):
        with Image.open(value) as img:
            return np.asarray(img)
    return np.asarray(value)  # a PIL image, nested lists or an array
