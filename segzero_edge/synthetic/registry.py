"""The template registry: ids, families, which ids are held out for zero-shot, and
the small predicate builders the template families share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .language import Predicate, Query, Ref, describe, inventory
from .scene import Scene, SceneObject

ZEROSHOT_TEMPLATES: tuple[str, ...] = (
    "size_second_extreme",
    "spatial_between",
    "attr_shape_not_colour",
    "count_unique_colour",
    "function_colour",
)

#: Template families, in the order templates are listed.
FAMILIES = ("size", "spatial", "unique", "attribute", "count", "function")

Generator = Callable[[Scene, np.random.Generator], list[Query]]


@dataclass(frozen=True)
class Template:
    id: str
    family: str
    zeroshot: bool
    generate: Generator = field(repr=False)


TEMPLATES: dict[str, Template] = {}


def template(tid: str, family: str) -> Callable[[Generator], Generator]:
    def register(fn: Generator) -> Generator:
        if family not in FAMILIES or tid in TEMPLATES:
            raise ValueError(f"template {tid!r}: family {family!r} unknown or id already registered")
        TEMPLATES[tid] = Template(tid, family, tid in ZEROSHOT_TEMPLATES, fn)
        return fn

    return register


def make_query(tid: str, scene: Scene, target: SceneObject, text: str, steps: str, pred: Predicate) -> Query:
    reasoning = f"{inventory(scene)} {steps} So the target is {describe(target, scene)}."
    return Query(tid, TEMPLATES[tid].family, text, target.index, reasoning, pred)


def hits(pred: Predicate, scene: Scene) -> list[SceneObject]:
    return [o for o in scene.objects if pred(o, scene)]


def of(scene: Scene, colour: str | None = None, shape: str | None = None) -> list[SceneObject]:
    return [o for o in scene.objects if Ref(colour, shape).fits(o)]


def attr_is(attr: str, value: str) -> Callable[[SceneObject], bool]:
    def test(o: SceneObject) -> bool:
        return getattr(o, attr) == value

    return test


def only(attr: str, value: str) -> Predicate:
    """The object has `attr == value` and no other object does."""

    def pred(o: SceneObject, sc: Scene) -> bool:
        return getattr(o, attr) == value and sum(getattr(x, attr) == value for x in sc.objects) == 1

    return pred


def fits(ref: Ref) -> Predicate:
    def pred(o: SceneObject, sc: Scene) -> bool:
        return ref.fits(o)

    return pred


def kind_of(shapes: frozenset[str], colour: str) -> Predicate:
    def pred(o: SceneObject, sc: Scene) -> bool:
        return o.shape in shapes and o.colour == colour

    return pred


def only_kind_of(shapes: frozenset[str]) -> Predicate:
    """The object's shape is one of `shapes` and no other object's is."""

    def pred(o: SceneObject, sc: Scene) -> bool:
        return o.shape in shapes and sum(x.shape in shapes for x in sc.objects) == 1

    return pred
