"""Muted, textured backgrounds: low saturation and mid lightness, so that every object
colour (white and black included) stands out, with texture that is not object-like."""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image

BACKGROUNDS = ("flat", "gradient", "noise", "stripes", "checker")


def _muted(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    h = rng.random() if hue is None else hue
    rgb = colorsys.hsv_to_rgb(h, rng.uniform(0.05, 0.25), rng.uniform(0.40, 0.62))
    return np.array(rgb, dtype=np.float32) * 255


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid upsampled bilinearly (compresses well)."""
    grid = (rng.random((max(2, h // cell + 2), max(2, w // cell + 2))) * 255).astype(np.uint8)
    up = Image.fromarray(grid).resize((w, h), Image.BILINEAR)
    return np.asarray(up, dtype=np.float32) / 255


def render_background(rng: np.random.Generator, w: int, h: int, difficulty: float) -> tuple[np.ndarray, str]:
    """An HxWx3 float32 muted background and its kind (one of BACKGROUNDS)."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    a = _muted(rng)
    # the second colour is mostly a lightness shift of the first (texture, not a second
    # "object"), with a small tint so textures are not always grey-on-grey
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(10, 16 + 14 * difficulty)
    b = np.clip(a + shift + rng.normal(0, 5, 3).astype(np.float32), 70, 175).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == "flat":
        t = np.zeros((h, w), np.float32)
    elif kind == "gradient":
        t = (proj - proj.min()) / max(1e-6, float(np.ptp(proj)))
    elif kind == "noise":
        t = _smooth_noise(rng, w, h, int(rng.integers(24, 64)))
    elif kind == "stripes":
        period = rng.uniform(0.06, 0.14) * min(w, h)
        t = (np.sin(2 * math.pi * proj / period) > 0).astype(np.float32)
    else:  # checker
        cell = rng.uniform(0.07, 0.15) * min(w, h)
        t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    bg = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return bg, kind
