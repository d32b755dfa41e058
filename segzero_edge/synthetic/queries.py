"""Queries for a scene, and their Seg-Zero answers and completions in 840 space.

`make_queries` asks each template for its candidates, keeps one per template at
random, and re-checks that each query's predicate selects exactly its target.
`answer_for` turns the target's mask into Seg-Zero's ground truth (the bbox of the
mask resized to 840×840 with nearest, and the two inscribed-circle reference points),
and `format_completion` writes the exact completion a trained reasoner should emit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..geometry import mask_bbox, reference_points
from ..prompts import REASONER_SIZE
from .language import Query
from .scene import Scene
from .templates import SEEN_TEMPLATES, TEMPLATES, ZEROSHOT_TEMPLATES

__all__ = [
    "SEEN_TEMPLATES",
    "TEMPLATES",
    "ZEROSHOT_TEMPLATES",
    "Query",
    "SegZeroAnswer",
    "answer_for",
    "format_completion",
    "make_queries",
    "solution_string",
]

Box = tuple[int, int, int, int]
Points = tuple[tuple[int, int], tuple[int, int]]


def make_queries(
    scene: Scene, rng: np.random.Generator, templates: Iterable[str] | None = None
) -> list[Query]:
    """At most one query per template (in the given order), each with a unique answer.

    `templates` defaults to the seen (non-zero-shot) templates. Raises KeyError for an
    unknown id and RuntimeError if a template emits an ambiguous query (a generator bug).
    """
    ids = SEEN_TEMPLATES if templates is None else tuple(templates)
    unknown = [t for t in ids if t not in TEMPLATES]
    if unknown:
        raise KeyError(f"unknown query templates {unknown}; known: {', '.join(TEMPLATES)}")
    out: list[Query] = []
    for tid in ids:
        candidates = TEMPLATES[tid].generate(scene, rng)
        if not candidates:
            continue
        query = candidates[int(rng.integers(len(candidates)))]
        matched = query.matches(scene)
        if matched != [query.target]:
            raise RuntimeError(
                f"template {tid} made an ambiguous query {query.text!r} for scene seed {scene.seed}: "
                f"target {query.target}, predicate matches {matched}"
            )
        out.append(query)
    return out


@dataclass(frozen=True)
class SegZeroAnswer:
    """Ground truth in 840 space: inclusive mask bbox and the two reference points."""

    bbox: Box
    points: Points


def mask_to_reasoner(mask: np.ndarray, size: int = REASONER_SIZE) -> np.ndarray:
    """An HxW bool mask resized to size×size with nearest neighbour (Seg-Zero's 840 space)."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return np.asarray(img.resize((size, size), Image.NEAREST)) > 127


def answer_for(mask: np.ndarray) -> SegZeroAnswer:
    """Seg-Zero's ground truth for one target mask (any HxW), in 840 space."""
    m840 = mask_to_reasoner(mask)
    bbox = mask_bbox(m840)
    if bbox is None:
        raise ValueError("the target mask is empty after resizing to 840x840; it cannot be a target")
    # The distance transform of a crop with a 1-px background border equals the full one
    # inside it, and row-major order (the tie-break) is kept: same points, far less work.
    x0, y0 = max(0, bbox[0] - 1), max(0, bbox[1] - 1)
    crop = m840[y0 : bbox[3] + 2, x0 : bbox[2] + 2]
    (ax, ay), (bx, by) = reference_points(crop)
    return SegZeroAnswer(bbox=bbox, points=((ax + x0, ay + y0), (bx + x0, by + y0)))


def _check_reasoning(reasoning: str) -> None:
    bad = sorted({ch for ch in reasoning if ch in "<>{}"})
    if bad:
        raise ValueError(
            f"reasoning must not contain {bad}: Seg-Zero reads the answer as the first '{{...}}' and the "
            f"thinking as '<think>([^<]+)</think>'; got {reasoning[:80]!r}"
        )
    if not reasoning.strip():
        raise ValueError("reasoning is empty; Seg-Zero's thinking extraction needs at least one character")


def _ints(values: Sequence[float], n: int, what: str) -> list[int]:
    if len(values) != n:
        raise ValueError(f"{what} needs {n} numbers, got {list(values)!r}")
    return [int(v) for v in values]


def format_completion(reasoning: str, bbox: Sequence[float], points: Sequence[Sequence[float]]) -> str:
    """The exact Seg-Zero completion: `<think>…</think><answer>{"bbox": …, "points_1": …, "points_2": …}</answer>`.

    Lists are written without spaces, as in Seg-Zero's prompt example.
    """
    _check_reasoning(reasoning)
    box = _ints(bbox, 4, "bbox")
    if len(points) != 2:
        raise ValueError(f"points needs two (x, y) pairs, got {points!r}")
    p1, p2 = (_ints(p, 2, "a point") for p in points)
    answer = ", ".join(
        f"{json.dumps(key)}: [{','.join(map(str, value))}]"
        for key, value in (("bbox", box), ("points_1", p1), ("points_2", p2))
    )
    return f"<think>{reasoning}</think><answer>{{{answer}}}</answer>"


def solution_string(bbox: Sequence[float], points: Sequence[Sequence[float]]) -> str:
    """Seg-Zero's training solution: `<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>`."""
    x1, y1, x2, y2 = _ints(bbox, 4, "bbox")
    (a, b), (c, d) = (_ints(p, 2, "a point") for p in points)
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({a},{b}),({c},{d})</points>"
