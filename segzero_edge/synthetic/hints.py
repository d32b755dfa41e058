"""Function-hint templates: world knowledge that maps a description to shapes
("something that could roll" → circle or ring), alone or (zero-shot) with a colour."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .language import (
    Query,
    describe,
    listing,
)
from .registry import (
    kind_of,
    make_query,
    only_kind_of,
    template,
)
from .scene import Scene

# --- function hints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Hint:
    text: str  # the query
    coloured: str  # the query restricted to one colour, with a {colour} slot
    shapes: frozenset[str]  # the shapes that fit
    why: str  # the knowledge the reasoning states


HINTS: tuple[Hint, ...] = (
    Hint(
        "something that could roll",
        "the {colour} shape that could roll",
        frozenset({"circle", "ring"}),
        "Round shapes can roll, so a circle or a ring fits.",
    ),
    Hint(
        "a shape that could be a wheel",
        "the {colour} shape that could be a wheel",
        frozenset({"circle", "ring"}),
        "A wheel is round, so a circle or a ring fits.",
    ),
    Hint(
        "something with no corners at all",
        "the {colour} shape with no corners",
        frozenset({"circle", "ring"}),
        "Only circles and rings have no corners.",
    ),
    Hint(
        "a shape like a donut",
        "the {colour} shape that looks like a donut",
        frozenset({"ring"}),
        "A donut is round with a hole in the middle, like a ring.",
    ),
    Hint(
        "a shape with a hole in the middle",
        "the {colour} shape with a hole in it",
        frozenset({"ring"}),
        "Of all these shapes only a ring has a hole.",
    ),
    Hint(
        "the symbol you would see on a hospital sign",
        "the {colour} shape you could use as a hospital sign",
        frozenset({"cross"}),
        "Hospitals are marked with a cross.",
    ),
    Hint(
        "the symbol on a first-aid kit",
        "the {colour} shape that could mark a first-aid kit",
        frozenset({"cross"}),
        "A first-aid kit is marked with a cross.",
    ),
    Hint(
        "something with five sharp points",
        "the {colour} shape with five sharp points",
        frozenset({"star"}),
        "A star has five sharp points.",
    ),
    Hint(
        "a shape that twinkles in the night sky",
        "the {colour} shape that twinkles in the night sky",
        frozenset({"star"}),
        "Stars twinkle in the night sky.",
    ),
    Hint(
        "a shape like a honeycomb cell",
        "the {colour} shape like a honeycomb cell",
        frozenset({"hexagon"}),
        "Honeycomb cells are hexagons.",
    ),
    Hint(
        "a shape with six sides",
        "the {colour} shape with six sides",
        frozenset({"hexagon"}),
        "A hexagon has six sides.",
    ),
    Hint(
        "a shape with exactly three corners",
        "the {colour} shape with three corners",
        frozenset({"triangle"}),
        "A triangle has three corners.",
    ),
    Hint(
        "a shape like a slice of pizza",
        "the {colour} shape like a slice of pizza",
        frozenset({"triangle"}),
        "A slice of pizza is shaped like a triangle.",
    ),
    Hint(
        "a shape with four equal sides",
        "the {colour} shape with four equal sides",
        frozenset({"square"}),
        "A square has four equal sides.",
    ),
    Hint(
        "a shape like the face of a dice",
        "the {colour} shape like the face of a dice",
        frozenset({"square"}),
        "The face of a dice is a square.",
    ),
)


@template("function_hint", "function")
def function_hint(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for hint in HINTS:
        fits = [o for o in scene.objects if o.shape in hint.shapes]
        if len(fits) != 1 or len(scene.objects) < 2:
            continue
        pred = only_kind_of(hint.shapes)
        steps = f"{hint.why} The only such shape here is {describe(fits[0], scene)}."
        out.append(make_query("function_hint", scene, fits[0], hint.text, steps, pred))
    return out


@template("function_colour", "function")
def function_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for hint in HINTS:
        fits = [o for o in scene.objects if o.shape in hint.shapes]
        if len(fits) < 2:
            continue
        for c, n in Counter(o.colour for o in fits).items():
            if n != 1:
                continue
            pred = kind_of(hint.shapes, c)
            t = next(o for o in fits if o.colour == c)
            steps = f"{hint.why} Those here are {listing(fits, scene)}. Of them, only one is {c}."
            out.append(make_query("function_colour", scene, t, hint.coloured.format(colour=c), steps, pred))
    return out
