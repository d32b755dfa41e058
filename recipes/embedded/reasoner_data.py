"""Scenes as the embedded reasoner sees them, shared by vision pre-training, feature caching and SFT.

The image path is the runtime's, step for step: the 512² scene → Seg-Zero's 840² bilinear
resize → Qwen's smart-resize to `side`² (PIL bicubic on uint8) → normalise → patchify. Scenes
are kept as the `side`² uint8 images (side² x 3 bytes: 4 000 scenes at 336² are 1.4 GB) and
patchified per batch, which is cheap, instead of as float patches (4x larger).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: token target columns: colour id, shape id (0 = background), covering object's box /840 (x1, y1,
#: x2, y2; -1 when background), token row, token column, then the decimal digits (hundreds, tens,
#: units) of the covering object's Seg-Zero answer in 840 space: box x1, y1, x2, y2 and reference
#: points p1x, p1y, p2x, p2y (-1 when background).
COORDS = ("x1", "y1", "x2", "y2", "p1x", "p1y", "p2x", "p2y")
TARGET_COLUMNS = ("colour", "shape", "x1", "y1", "x2", "y2", "row", "col",
                  *(f"{c}_{place}" for c in COORDS for place in ("100", "10", "1")))
DIGIT_START = 8


def digits(values: list[int]) -> list[int]:
    """[405, 31] -> [4, 0, 5, 0, 3, 1]: hundreds, tens and units of each 840-space coordinate."""
    return [d for v in values for d in (v // 100 % 10, v // 10 % 10, v % 10)]


@dataclass(frozen=True)
class ImageSpec:
    """The reasoner's input size: Qwen's smart-resize of the 840² image to `side`² (max_pixels)."""

    side: int
    patch: int = 14
    merge: int = 2

    @property
    def grid(self) -> tuple[int, int, int]:
        return 1, self.side // self.patch, self.side // self.patch

    @property
    def tokens(self) -> int:
        return (self.side // self.patch // self.merge) ** 2

    def qwen_config(self):
        from segzero_edge.graphs.qwen_preprocess import QwenImageConfig
        from segzero_edge.testing.tiny import IMAGE_MEAN, IMAGE_STD

        return QwenImageConfig(min_pixels=56 * 56, max_pixels=self.side * self.side,
                               image_mean=tuple(IMAGE_MEAN), image_std=tuple(IMAGE_STD))


def reasoner_image(scene_image: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """HxWx3 uint8 scene → the side x side x 3 uint8 image the vision tower patchifies."""
    from PIL import Image

    from segzero_edge.graphs.qwen_preprocess import resize_image
    from segzero_edge.prompts import resize_for_reasoner

    resized = np.asarray(resize_for_reasoner(Image.fromarray(scene_image)))
    out = resize_image(resized, spec.qwen_config())
    if out.shape[:2] != (spec.side, spec.side):
        raise ValueError(f"smart-resize gave {out.shape[:2]}, expected {spec.side}x{spec.side}")
    return out


def pixel_batch(images: np.ndarray, spec: ImageSpec) -> tuple[np.ndarray, np.ndarray]:
    """[B, side, side, 3] uint8 → (pixel_values [B*P, 1176] float32, grid_thw [B, 3] int64)."""
    from segzero_edge.graphs.qwen_preprocess import normalize_image, patchify

    cfg = spec.qwen_config()
    rows = [patchify(normalize_image(img, cfg), cfg)[0] for img in images]
    return np.concatenate(rows), np.asarray([spec.grid] * len(images), dtype=np.int64)


def token_targets(scene: Any, spec: ImageSpec, min_share: float = 0.15) -> np.ndarray:
    """[T, len(TARGET_COLUMNS)] float32 per merged token (row-major, the merger's order): the colour
    and shape of the object covering most of the token's cell (when it covers >= `min_share` of
    it), that object's box in 840 space / 840, the token's row and column, and the digits of the
    object's box and reference points (its Seg-Zero answer)."""
    from segzero_edge.synthetic import COLOURS, SHAPES, answer_for

    n = spec.side // spec.patch // spec.merge
    h, w = scene.image.shape[:2]
    colour_ids = {c: i + 1 for i, c in enumerate(COLOURS)}
    shape_ids = {s: i + 1 for i, s in enumerate(SHAPES)}
    targets = np.zeros((n * n, len(TARGET_COLUMNS)), np.float32)
    targets[:, 2:6] = -1.0
    targets[:, DIGIT_START:] = -1.0
    ys = (np.arange(n + 1) * h) // n
    xs = (np.arange(n + 1) * w) // n
    share = np.zeros((len(scene.objects), n, n), np.float32)
    for k, obj in enumerate(scene.objects):
        m = obj.mask.astype(np.float32)
        cum = np.pad(m.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image: exact cell sums
        sums = cum[ys[1:]][:, xs[1:]] - cum[ys[:-1]][:, xs[1:]] - cum[ys[1:]][:, xs[:-1]] + cum[ys[:-1]][:, xs[:-1]]
        share[k] = sums / np.outer(np.diff(ys), np.diff(xs))
    best = share.argmax(0)
    answers: dict[int, Any] = {}
    for r in range(n):
        for c in range(n):
            t = targets[r * n + c]
            t[6], t[7] = r, c
            k = int(best[r, c])
            if share[k, r, c] >= min_share:
                obj = scene.objects[k]
                if k not in answers:
                    answers[k] = answer_for(obj.mask)
                ans = answers[k]
                t[0], t[1] = colour_ids[obj.colour], shape_ids[obj.shape]
                t[2:6] = np.asarray(ans.bbox, np.float32) / 840.0
                t[DIGIT_START:] = digits([*ans.bbox, *ans.points[0], *ans.points[1]])
    return targets
