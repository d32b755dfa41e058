"""The vocabulary queries are built from: `Query`, object references, phrasing helpers,
and the size/position relations with the margins that keep every answer unambiguous.

A query carries its `predicate(obj, scene) -> bool`, so uniqueness is checkable: the
predicate holds for the target and for no other object.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np

from .scene import Scene, SceneObject

Predicate = Callable[[SceneObject, Scene], bool]

NUMBER = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
TIMES = {1: "only once", 2: "twice", 3: "three times", 4: "four times"}
_PLURAL = {"cross": "crosses"}

# Margins that keep every answer obvious to a human (and so learnable).
SIZE_AREA_RATIO = 1.35  # full (unoccluded) areas
SIZE_VISIBLE_RATIO = 1.2  # visible areas
POSITION_MARGIN = 0.06  # of the image side, for leftmost/topmost
DIRECT_CONE_DEG = 30.0  # "directly left of": within ±30° of the axis
DIRECT_CLEAR_DEG = 50.0  # ... and nothing else within ±50°
NEAREST_RATIO = 1.4  # centroid distances, runner-up / nearest
NEAREST_CLEARANCE = 0.03  # of the short side: the runner-up's bounding-circle gap beyond the nearest's


@dataclass(frozen=True)
class Query:
    """One query with exactly one target object (`scene.objects[target]`)."""

    template: str
    family: str
    text: str
    target: int
    reasoning: str
    predicate: Predicate = field(repr=False, compare=False)

    def matches(self, scene: Scene) -> list[int]:
        """Indices of the objects the query's predicate selects (exactly [target] when valid)."""
        return [o.index for o in scene.objects if self.predicate(o, scene)]


# --- language helpers ---------------------------------------------------------------


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def plural(shape: str) -> str:
    return _PLURAL.get(shape, shape + "s")


@dataclass(frozen=True)
class Ref:
    """A description of one object by colour and/or shape ("the blue star", "the ring")."""

    colour: str | None = None
    shape: str | None = None

    def fits(self, o: SceneObject) -> bool:
        return (self.colour is None or o.colour == self.colour) and (
            self.shape is None or o.shape == self.shape
        )

    def resolve(self, scene: Scene) -> SceneObject | None:
        """The one object this describes, or None when zero or several fit."""
        hits = [o for o in scene.objects if self.fits(o)]
        return hits[0] if len(hits) == 1 else None

    @property
    def phrase(self) -> str:
        return "the " + " ".join(p for p in (self.colour, self.shape or "shape") if p)


def unique_ref(o: SceneObject, scene: Scene, rng: np.random.Generator) -> Ref | None:
    """A short description that picks out `o` alone, or None when its colour+shape repeats."""
    options = [r for r in (Ref(o.colour, o.shape), Ref(shape=o.shape)) if r.resolve(scene) is o]
    if not options:
        return None
    return options[int(rng.integers(len(options)))]


def where(o: SceneObject, scene: Scene) -> str:
    """Coarse position on a 3×3 grid: "at the top left", "in the centre", ..."""
    col = ("left", "centre", "right")[min(2, int(3 * o.centroid[0] / scene.width))]
    row = ("top", "middle", "bottom")[min(2, int(3 * o.centroid[1] / scene.height))]
    if row == "middle":
        return "in the centre" if col == "centre" else f"on the {col}"
    return f"at the {row}" if col == "centre" else f"at the {row} {col}"


# --- grounded reasoning ---------------------------------------------------------------

_GROUNDED: ContextVar[bool] = ContextVar("segzero_synthetic_grounded", default=False)
_BOX_CACHE: weakref.WeakKeyDictionary[SceneObject, tuple[int, int, int, int]] = weakref.WeakKeyDictionary()


@contextmanager
def grounded() -> Iterator[None]:
    """Within this block, reasoning names every object with its box in Seg-Zero's 840 space.

    The inventory lists each object on its own ("red circle [12,40,130,160]", ordered by the
    box's left edge, then top edge) and every later mention carries the same box, so the
    final answer is a copy of a box already written in the reasoning. One sample then
    supervises every object's coordinates instead of one box, and the answer is a lookup,
    which small transformers learn easily. Seg-Zero's format and rewards are unchanged: the
    reasoning text is free. Outside this block the text is the plain templated one.
    """
    token = _GROUNDED.set(True)
    try:
        yield
    finally:
        _GROUNDED.reset(token)


def is_grounded() -> bool:
    return _GROUNDED.get()


def box840(o: SceneObject) -> tuple[int, int, int, int]:
    """The object's Seg-Zero ground-truth box: its mask resized to 840x840 (nearest), inclusive."""
    box = _BOX_CACHE.get(o)
    if box is None:
        from ..geometry import mask_bbox
        from .queries import mask_to_reasoner  # queries imports this module

        found = mask_bbox(mask_to_reasoner(o.mask))
        if found is None:
            raise ValueError(f"object {o.index} ({o.name}) has no pixels in 840 space")
        box = _BOX_CACHE[o] = found
    return box


def box_text(o: SceneObject) -> str:
    """ "[x1,y1,x2,y2]" in 840 space, written as the answer JSON writes lists."""
    return "[" + ",".join(str(v) for v in box840(o)) + "]"


def describe(o: SceneObject, scene: Scene) -> str:
    """ "the red circle", with its position when another red circle exists; grounded:
    "the red circle [x1,y1,x2,y2]" always."""
    if _GROUNDED.get():
        return f"the {o.name} {box_text(o)}"
    twins = sum(1 for x in scene.objects if x.colour == o.colour and x.shape == o.shape)
    return f"the {o.name}" + (f" {where(o, scene)}" if twins > 1 else "")


def inventory(scene: Scene) -> str:
    """ "I see 4 shapes: a red circle, two blue stars and a white ring." (left to right);
    grounded: "I see 4 shapes: red circle [..], blue star [..], ..." by left box edge."""
    if _GROUNDED.get():
        objs = sorted(scene.objects, key=lambda o: (box840(o)[0], box840(o)[1], o.index))
        listed = ", ".join(f"{o.name} {box_text(o)}" for o in objs)
        return f"I see {len(scene.objects)} shapes: {listed}."
    counts: Counter[str] = Counter()
    order: list[str] = []
    for o in sorted(scene.objects, key=lambda o: o.centroid[0]):
        if o.name not in counts:
            order.append(o.name)
        counts[o.name] += 1
    parts = [
        f"{article(name)} {name}"
        if counts[name] == 1
        else f"{NUMBER[counts[name]]} {name.split()[0]} {plural(name.split()[1])}"
        for name in order
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"I see {len(scene.objects)} shapes: {listed}."


def listing(objs: Sequence[SceneObject], scene: Scene) -> str:
    """ "the red circle, the blue star and the red square", left to right."""
    names = [describe(o, scene) for o in sorted(objs, key=lambda o: o.centroid[0])]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


# --- relations with margins -----------------------------------------------------------


def clearly_larger(a: SceneObject, b: SceneObject) -> bool:
    """a is bigger than b by every measure a viewer might use, with a margin."""
    return (
        a.full_area >= SIZE_AREA_RATIO * b.full_area
        and a.area >= SIZE_VISIBLE_RATIO * b.area
        and a.radius >= b.radius
    )


def extreme_size(group: Callable[[SceneObject], bool], largest: bool) -> Predicate:
    def pred(o: SceneObject, scene: Scene) -> bool:
        if not group(o):
            return False
        others = [x for x in scene.objects if x is not o and group(x)]
        return bool(others) and all(clearly_larger(o, x) if largest else clearly_larger(x, o) for x in others)

    return pred


AXES = {  # direction -> (axis, sign): the coordinate that grows towards that direction
    "left": (0, -1),
    "right": (0, 1),
    "top": (1, -1),
    "bottom": (1, 1),
}
EXTREME_WORD = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost"}


def extreme_position(group: Callable[[SceneObject], bool], direction: str) -> Predicate:
    axis, sign = AXES[direction]

    def pred(o: SceneObject, scene: Scene) -> bool:
        if not group(o):
            return False
        margin = POSITION_MARGIN * (scene.width if axis == 0 else scene.height)
        others = [x for x in scene.objects if x is not o and group(x)]
        return bool(others) and all(sign * (o.centroid[axis] - x.centroid[axis]) >= margin for x in others)

    return pred


def in_cone(o: SceneObject, anchor: SceneObject, direction: str, half_angle: float) -> bool:
    axis, sign = AXES[direction]
    d = (o.centroid[0] - anchor.centroid[0], o.centroid[1] - anchor.centroid[1])
    along, across = sign * d[axis], abs(d[1 - axis])
    return along > 0 and across <= math.tan(math.radians(half_angle)) * along


def gap(a: SceneObject, b: SceneObject) -> float:
    return math.dist(a.centroid, b.centroid) - a.radius - b.radius


def between(
    o: SceneObject, a: SceneObject, b: SceneObject, t_range: tuple[float, float], width: float
) -> bool:
    ax, ay = a.centroid
    vx, vy = b.centroid[0] - ax, b.centroid[1] - ay
    length2 = vx * vx + vy * vy
    if length2 == 0:
        return False
    t = ((o.centroid[0] - ax) * vx + (o.centroid[1] - ay) * vy) / length2
    off = abs((o.centroid[0] - ax) * vy - (o.centroid[1] - ay) * vx) / math.sqrt(length2)
    return t_range[0] <= t <= t_range[1] and off <= width * math.sqrt(length2)
