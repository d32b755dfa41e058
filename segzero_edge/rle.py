"""Masks as COCO run-length encoding: `{"size": [H, W], "counts": "<compressed string>"}`.

The format is pycocotools' (`mask.encode`): runs over the mask in column-major order,
starting with a run of zeros, each run delta-coded against the run two before and written
as 5-bit groups in printable ASCII. Any COCO tool decodes it. pycocotools does the work when
it is installed; otherwise the numpy implementation below, which a test holds to produce the
same strings and masks.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class RLEError(ValueError):
    """An RLE that does not describe a mask of its stated size."""


def encode(mask: np.ndarray) -> dict[str, Any]:
    """HxW bool (or 0/1) mask -> {"size": [H, W], "counts": str}."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode takes an HxW mask, got shape {mask.shape}")
    try:
        from pycocotools import mask as coco
    except ImportError:
        return encode_numpy(mask)
    rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict[str, Any]) -> np.ndarray:
    """{"size": [H, W], "counts": str} -> HxW bool mask (raises `RLEError` when malformed)."""
    height, width = _size(rle)
    counts = rle.get("counts")
    if not isinstance(counts, str):
        raise RLEError(f"RLE counts must be a compressed string, got {type(counts).__name__}")
    try:
        from pycocotools import mask as coco
    except ImportError:
        return decode_numpy(rle)
    runs = _runs_from_string(counts)  # pycocotools does not check the total; refuse it here
    _check_total(runs, height, width)
    with warnings.catch_warnings():  # pycocotools 2.0.x trips numpy 2's __array__(copy=) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco.decode({"size": [height, width], "counts": counts.encode("ascii")}).astype(bool)


# -- numpy implementation (used without pycocotools) ---------------------------------------


def encode_numpy(mask: np.ndarray) -> dict[str, Any]:
    """`encode` without pycocotools (same output)."""
    mask = np.asarray(mask)
    height, width = mask.shape
    flat = mask.astype(bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]  # COCO counts start with a run of zeros
    return {"size": [int(height), int(width)], "counts": _runs_to_string(runs)}


def decode_numpy(rle: dict[str, Any]) -> np.ndarray:
    """`decode` without pycocotools (same output)."""
    height, width = _size(rle)
    runs = _runs_from_string(rle["counts"])
    _check_total(runs, height, width)
    values = np.arange(len(runs)) % 2 == 1
    flat = np.repeat(values, runs)
    return flat.reshape((width, height)).T.copy() if flat.size else np.zeros((height, width), bool)


def _runs_to_string(runs: list[int]) -> str:
    """pycocotools' rleToString: delta against the run two before, 5-bit little-endian groups,
    0x20 = more groups follow, 0x10 = sign of the last group, offset by 48 ('0')."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative deltas end at -1
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _runs_from_string(counts: str) -> list[int]:
    """pycocotools' rleFrString."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts):
                raise RLEError("RLE counts string ends inside a run")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise RLEError(f"RLE counts has {counts[p]!r} at {p}, outside the COCO alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise RLEError(f"RLE counts decode to a negative run ({x}) at run {len(runs)}")
        runs.append(x)
    return runs


def _size(rle: Any) -> tuple[int, int]:
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RLEError(f"an RLE is a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in size)
    ):
        raise RLEError(f"RLE size must be [height, width] non-negative integers, got {size!r}")
    return int(size[0]), int(size[1])


def _check_total(runs: list[int], height: int, width: int) -> None:
    if sum(runs) != height * width:
        raise RLEError(f"RLE runs cover {sum(runs)} pixels; size {height}x{width} has {height * width}")
