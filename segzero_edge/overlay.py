"""Render a `Result` over its image: mask tint and outline, box, points, and a caption with
the query and the reasoning. PIL only, so the runtime can draw without matplotlib.

The tint alone hides an object of the tint's own colour (a blue mug under a blue tint), so
the mask is also outlined: white along the inside of its border, black just outside it,
which stays visible on any colour.
"""

from __future__ import annotations

import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .pipeline import Result

_MASK_RGB = np.array([30, 144, 255], dtype=np.float32)
_BOX_RGB = (255, 64, 64)
_POINT_RGB = (255, 215, 0)
_OUTLINE_IN = np.array([255, 255, 255], dtype=np.float32)
_OUTLINE_OUT = np.array([0, 0, 0], dtype=np.float32)


def _shift_any(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in `mask` (one step of binary dilation, edges not wrapped)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def mask_outline(mask: np.ndarray, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer) HxW bool: mask pixels within `width` steps of the background, and
    background pixels within `width` steps of the mask (4-connected)."""
    mask = np.asarray(mask, dtype=bool)
    grown, shrunk = mask, mask
    for _ in range(width):
        grown = _shift_any(grown)
        shrunk = ~_shift_any(~shrunk)
    return mask & ~shrunk, grown & ~mask


def render_overlay(image: np.ndarray, result: Result, *, alpha: float = 0.5, caption: bool = True) -> Image.Image:
    """An RGB image: the input with the result drawn on it, plus a caption strip below."""
    canvas = image.astype(np.float32)
    if result.mask is not None:
        m = np.asarray(result.mask, dtype=bool)
        canvas[m] = canvas[m] * (1 - alpha) + _MASK_RGB * alpha
        inner, outer = mask_outline(m, max(1, round(max(m.shape) / 400)))
        canvas[inner] = _OUTLINE_IN
        canvas[outer] = _OUTLINE_OUT
    out = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    scale = max(1, round(max(out.size) / 400))
    # every object's own prompt (a multi answer's `bbox` is only the box around them all)
    prompts = [(o.bbox, o.points) for o in result.objects] or [(result.bbox, result.points or ())]
    for box, points in prompts:
        if box is not None:
            draw.rectangle(box, outline=_BOX_RGB, width=2 * scale)
        for x, y in points:
            r = 4 * scale
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_POINT_RGB, outline=(0, 0, 0), width=scale)
    if not caption:
        return out
    return _with_caption(out, result)


def _with_caption(image: Image.Image, result: Result) -> Image.Image:
    font = ImageFont.load_default()
    width_chars = max(20, image.width // 7)
    lines = textwrap.wrap(f"Query: {result.query}", width_chars)
    if result.ok:
        status = describe_objects(result)
    else:
        status = f"FAILED: {result.error}"
    lines += textwrap.wrap(status, width_chars)
    if result.thinking:
        lines += textwrap.wrap(f"Reasoning: {result.thinking.strip()}", width_chars)[:8]
    line_height = 14
    strip = Image.new("RGB", (image.width, line_height * len(lines) + 8), (20, 20, 20))
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * line_height), line, fill=(235, 235, 235), font=font)
    out = Image.new("RGB", (image.width, image.height + strip.height))
    out.paste(image, (0, 0))
    out.paste(strip, (0, image.height))
    return out


def describe_objects(result: Result) -> str:
    """One line for a successful result: its box, points and score, or each object's."""
    if len(result.objects) <= 1 and result.bbox is not None:
        status = f"bbox={list(result.bbox)} points={[list(p) for p in result.points or ()]}"
        return status + (f" score={result.score:.3f}" if result.score is not None else "")
    if not result.objects:
        return "no object matches (empty mask)"
    parts = [f"#{i} bbox={list(o.bbox)} point={list(o.points[0])} score={o.score:.3f}" for i, o in enumerate(result.objects)]
    return f"{len(result.objects)} objects: " + "; ".join(parts)
