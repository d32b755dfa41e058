"""Multi-target and no-target queries for the multi-object (VisionReasoner) answer format.

Each query names a set of objects ("all the red shapes", "every shape left of the ring")
and carries a predicate that selects exactly that set, possibly empty: a no-target query
("all the purple shapes" in a scene without purple) has the empty set as its answer. Spatial
sets keep a margin: no object may sit near the dividing line, so every answer is obvious.

The single-object templates (`templates.py`, `spatial.py`, `hints.py`) are not touched;
these are registered separately in `MULTI_TEMPLATES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .language import (
    POSITION_MARGIN,
    Predicate,
    Ref,
    cap,
    inventory,
    listing,
    pick,
    plural,
    unique_ref,
    where,
)
from .scene import COLOURS, SHAPES, Scene, SceneObject

_SIDE = {"left": "left of", "right": "right of", "top": "above", "bottom": "below"}
_AXIS = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}


@dataclass(frozen=True)
class MultiQuery:
    """One query with a set of targets (`scene.objects[i]` for i in `targets`), maybe none."""

    template: str
    family: str  # "multi" (one or more targets) or "none" (no target)
    text: str
    targets: tuple[int, ...]  # left to right
    reasoning: str
    predicate: Predicate = field(repr=False, compare=False)
    anchor: int | None = None  # the reference object of a spatial query

    def matches(self, scene: Scene) -> list[int]:
        """Indices of the objects the predicate selects (exactly `targets`, in index order)."""
        return [o.index for o in scene.objects if self.predicate(o, scene)]


Generator = Callable[[Scene, np.random.Generator], list[MultiQuery]]
MULTI_TEMPLATES: dict[str, tuple[str, Generator]] = {}


def _register(tid: str, family: str) -> Callable[[Generator], Generator]:
    def register(fn: Generator) -> Generator:
        MULTI_TEMPLATES[tid] = (family, fn)
        return fn

    return register


def _query(
    tid: str, family: str, scene: Scene, text: str, steps: str, pred: Predicate, anchor: int | None = None
) -> MultiQuery:
    targets = sorted((o for o in scene.objects if pred(o, scene)), key=lambda o: o.centroid[0])
    if not targets:
        ending = "So no shape matches."
    else:
        ending = f"So the target{'s are' if len(targets) > 1 else ' is'} {listing(targets, scene)}."
    reasoning = f"{inventory(scene)} {steps} {ending}"
    return MultiQuery(tid, family, text, tuple(o.index for o in targets), reasoning, pred, anchor)


def _members(noun: str, members: list[SceneObject], scene: Scene) -> str:
    """ "The only ring is the white ring." / "The red ones are the red circle and the red star." """
    if len(members) == 1:
        return f"The only {noun} is {listing(members, scene)}."
    many = noun.replace(" one", " ones") if noun.endswith(" one") else plural(noun)
    return f"The {many} are {listing(members, scene)}."


def _colour_text(rng: np.random.Generator, colour: str) -> str:
    return pick(rng, (f"all the {colour} shapes", f"every {colour} shape", f"the {colour} objects"))


def _shape_text(rng: np.random.Generator, shape: str) -> str:
    return pick(rng, (f"all the {plural(shape)}", f"every {shape}", f"each {shape} in the image"))


def _colour_pred(colour: str) -> Predicate:
    return lambda o, sc: o.colour == colour


def _shape_pred(shape: str) -> Predicate:
    return lambda o, sc: o.shape == shape


@_register("multi_colour", "multi")
def multi_colour(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    out = []
    for colour in sorted({o.colour for o in scene.objects}):
        members = [o for o in scene.objects if o.colour == colour]
        steps = _members(f"{colour} one", members, scene)
        out.append(_query("multi_colour", "multi", scene, _colour_text(rng, colour), steps, _colour_pred(colour)))
    return out


@_register("multi_shape", "multi")
def multi_shape(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    out = []
    for shape in sorted({o.shape for o in scene.objects}):
        members = [o for o in scene.objects if o.shape == shape]
        steps = _members(shape, members, scene)
        out.append(_query("multi_shape", "multi", scene, _shape_text(rng, shape), steps, _shape_pred(shape)))
    return out


@_register("multi_not_colour", "multi")
def multi_not_colour(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    out = []
    for colour in sorted({o.colour for o in scene.objects}):
        rest = [o for o in scene.objects if o.colour != colour]
        if len(rest) < 2:
            continue
        text = pick(rng, (f"every shape that is not {colour}", f"all the shapes except the {colour} ones"))
        steps = f"Leaving out the {colour} ones leaves {listing(rest, scene)}."
        out.append(_query("multi_not_colour", "multi", scene, text, steps, lambda o, sc, c=colour: o.colour != c))
    return out


def _beyond(o: SceneObject, anchor: SceneObject, side: str) -> float:
    """Signed centroid distance of o past the anchor towards `side` (positive = on that side)."""
    axis, sign = _AXIS[side]
    return sign * (o.centroid[axis] - anchor.centroid[axis])


def _side_queries(scene: Scene, rng: np.random.Generator, want_targets: bool) -> list[MultiQuery]:
    tid, family = ("multi_side", "multi") if want_targets else ("none_side", "none")
    out = []
    for anchor in scene.objects:
        ref = unique_ref(anchor, scene, rng)
        if ref is None:
            continue
        for side, phrase in _SIDE.items():
            margin = POSITION_MARGIN * (scene.width if _AXIS[side][0] == 0 else scene.height)
            others = [o for o in scene.objects if o is not anchor]
            offsets = [_beyond(o, anchor, side) for o in others]
            if any(abs(d) < margin for d in offsets):
                continue  # someone sits on the dividing line: the answer would be a judgement call
            inside = [o for o, d in zip(others, offsets, strict=True) if d >= margin]
            if bool(inside) != want_targets:
                continue

            def pred(o: SceneObject, sc: Scene, ref: Ref = ref, side: str = side, margin: float = margin) -> bool:
                a = ref.resolve(sc)
                return a is not None and o is not a and _beyond(o, a, side) >= margin

            text = f"{pick(rng, ('every shape', 'all the shapes', 'all objects'))} {phrase} {ref.phrase}"
            found = (
                f"{cap(listing(inside, scene))} {'is' if len(inside) == 1 else 'are'} {phrase} it."
                if inside
                else f"Nothing is {phrase} it."
            )
            steps = f"{cap(ref.phrase)} is {where(anchor, scene)}. {found}"
            out.append(_query(tid, family, scene, text, steps, pred, anchor.index))
    return out


@_register("multi_side", "multi")
def multi_side(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    return _side_queries(scene, rng, want_targets=True)


@_register("none_colour", "none")
def none_colour(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    present = {o.colour for o in scene.objects}
    out = []
    for colour in (c for c in COLOURS if c not in present):
        steps = f"None of them is {colour}."
        out.append(_query("none_colour", "none", scene, _colour_text(rng, colour), steps, _colour_pred(colour)))
    return out


@_register("none_shape", "none")
def none_shape(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    present = {o.shape for o in scene.objects}
    out = []
    for shape in (s for s in SHAPES if s not in present):
        steps = f"None of them is {'an' if shape[0] in 'aeiou' else 'a'} {shape}."
        out.append(_query("none_shape", "none", scene, _shape_text(rng, shape), steps, _shape_pred(shape)))
    return out


@_register("none_side", "none")
def none_side(scene: Scene, rng: np.random.Generator) -> list[MultiQuery]:
    return _side_queries(scene, rng, want_targets=False)


def make_multi_queries(scene: Scene, rng: np.random.Generator, family: str) -> list[MultiQuery]:
    """Every candidate of one family ("multi" or "none"), re-checked: each predicate selects
    exactly its targets. Raises RuntimeError on a mismatch (a generator bug)."""
    if family not in ("multi", "none"):
        raise ValueError(f"family must be 'multi' or 'none', got {family!r}")
    out = []
    for tid, (fam, generate) in MULTI_TEMPLATES.items():
        if fam != family:
            continue
        for query in generate(scene, rng):
            if sorted(query.matches(scene)) != sorted(query.targets) or (family == "none") != (not query.targets):
                raise RuntimeError(f"template {tid} made an inconsistent query {query.text!r} (scene {scene.seed})")
            out.append(query)
    return out


__all__ = ["MULTI_TEMPLATES", "MultiQuery", "make_multi_queries"]
