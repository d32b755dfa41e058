"""A contact sheet of one scene for eyeballing: the image, its instance masks overlaid
with numbered outlines, and each query with its target and 840-space answer."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .language import Query
from .queries import answer_for
from .scene import Scene

# distinct tints for instance ids, cycled
_TINTS = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
    ],
    np.float32,
)


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def render_preview(scene: Scene, queries: Sequence[Query]) -> Image.Image:
    """Image | masks side by side, with a caption strip listing objects and queries."""
    font = ImageFont.load_default()
    overlay = scene.image.astype(np.float32) * 0.35
    for o in scene.objects:
        tint = _TINTS[o.index % len(_TINTS)]
        overlay[o.mask] = overlay[o.mask] * 0.3 + tint * 0.7
        overlay[_outline(o.mask)] = 255
    panel = Image.fromarray(np.clip(overlay, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(panel)
    for o in scene.objects:
        draw.rectangle(o.bbox, outline=(255, 255, 255))
        draw.text(
            (o.bbox[0] + 3, o.bbox[1] + 2),
            str(o.index),
            fill=(255, 255, 255),
            font=font,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    sx, sy = scene.width / 840, scene.height / 840
    for q in queries:  # the 840-space answer mapped back: the reference points as dots
        ans = answer_for(scene.objects[q.target].mask)
        for x, y in ans.points:
            draw.ellipse(
                (x * sx - 3, y * sy - 3, x * sx + 3, y * sy + 3), fill=(255, 215, 0), outline=(0, 0, 0)
            )

    wrap = max(40, (2 * scene.width) // 7)
    lines = [
        f"seed {scene.seed}  background {scene.background}  "
        + "  ".join(f"#{o.index} {o.name} (rank {o.size_rank})" for o in scene.objects)
    ]
    lines = textwrap.wrap(lines[0], wrap)
    for q in queries:
        lines += textwrap.wrap(
            f"[{q.template}] {q.text}  ->  #{q.target} {scene.objects[q.target].name}", wrap
        )
    if queries:
        lines += textwrap.wrap(f"e.g. reasoning: {queries[0].reasoning}", wrap)
    strip = Image.new("RGB", (2 * scene.width, 14 * len(lines) + 8), (20, 20, 20))
    sdraw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        sdraw.text((4, 4 + 14 * i), line, fill=(235, 235, 235), font=font)
    sheet = Image.new("RGB", (2 * scene.width, scene.height + strip.height))
    sheet.paste(Image.fromarray(scene.image), (0, 0))
    sheet.paste(panel, (scene.width, 0))
    sheet.paste(strip, (0, scene.height))
    return sheet
