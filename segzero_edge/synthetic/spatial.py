"""Spatial query templates: direct neighbours, extremes, nearest, and (zero-shot) between."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .language import (
    DIRECT_CLEAR_DEG,
    DIRECT_CONE_DEG,
    EXTREME_WORD,
    NEAREST_CLEARANCE,
    NEAREST_RATIO,
    Query,
    Ref,
    between,
    cap,
    describe,
    extreme_position,
    gap,
    in_cone,
    listing,
    pick,
    plural,
    unique_ref,
    where,
)
from .registry import (
    attr_is,
    hits,
    make_query,
    template,
)
from .scene import Scene, SceneObject

# --- spatial ---------------------------------------------------------------------------

_DIRECT = {"left": "left of", "right": "right of", "top": "above", "bottom": "below"}
_LOOK = {"left": "to its left", "right": "to its right", "top": "above it", "bottom": "below it"}
_FURTHEST = {
    "left": "furthest to the left",
    "right": "furthest to the right",
    "top": "highest up",
    "bottom": "lowest down",
}


@template("spatial_direct", "spatial")
def spatial_direct(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for anchor in scene.objects:
        ref = unique_ref(anchor, scene, rng)
        if ref is None:
            continue
        for d, phrase in _DIRECT.items():
            others = [o for o in scene.objects if o is not anchor]
            strict = [o for o in others if in_cone(o, anchor, d, DIRECT_CONE_DEG)]
            clear = [o for o in others if in_cone(o, anchor, d, DIRECT_CLEAR_DEG)]
            if len(strict) != 1 or len(clear) != 1:
                continue

            def pred(o: SceneObject, sc: Scene, ref: Ref = ref, d: str = d) -> bool:
                a = ref.resolve(sc)
                return a is not None and o is not a and in_cone(o, a, d, DIRECT_CONE_DEG)

            t = strict[0]
            text = f"the {pick(rng, ('shape', 'object'))} directly {phrase} {ref.phrase}"
            steps = f"{cap(ref.phrase)} is {where(anchor, scene)}. The only shape straight {_LOOK[d]} is {describe(t, scene)}."
            out.append(make_query("spatial_direct", scene, t, text, steps, pred))
    return out


def _extreme_queries(tid: str, scene: Scene, rng: np.random.Generator, by: str) -> list[Query]:
    out = []
    keys = Counter(getattr(o, by) for o in scene.objects)
    for key, n in keys.items():
        if n < 2:
            continue
        group = attr_is(by, key)
        members = [o for o in scene.objects if group(o)]
        for d in EXTREME_WORD:
            pred = extreme_position(group, d)
            for t in hits(pred, scene):
                word = EXTREME_WORD[d]
                if d in ("top", "bottom"):
                    word = pick(rng, (word, "highest" if d == "top" else "lowest"))
                text = f"the {word} {key}" if by == "shape" else f"the {word} {key} shape"
                kind = plural(key) if by == "shape" else f"{key} shapes"
                steps = (
                    f"The {kind} are {listing(members, scene)}. {cap(describe(t, scene))} is {_FURTHEST[d]}."
                )
                out.append(make_query(tid, scene, t, text, steps, pred))
    return out


@template("spatial_extreme_kind", "spatial")
def spatial_extreme_kind(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _extreme_queries("spatial_extreme_kind", scene, rng, "shape")


@template("spatial_extreme_colour", "spatial")
def spatial_extreme_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _extreme_queries("spatial_extreme_colour", scene, rng, "colour")


def _nearest(o: SceneObject, a: SceneObject, sc: Scene) -> bool:
    """o is clearly the nearest to a: by centroid distance (a ratio) and by the gap between
    bounding circles; and no other object comes close to touching a (two shapes touching
    the anchor would make "closest" a matter of opinion)."""
    rest = [x for x in sc.objects if x is not o and x is not a]
    d = math.dist(o.centroid, a.centroid)
    clearance = NEAREST_CLEARANCE * min(sc.width, sc.height)
    return bool(rest) and all(
        NEAREST_RATIO * d <= math.dist(x.centroid, a.centroid)
        and gap(x, a) >= max(gap(o, a), 0.0) + clearance
        for x in rest
    )


@template("spatial_nearest", "spatial")
def spatial_nearest(scene: Scene, rng: np.random.Generator) -> list[Query]:
    if len(scene.objects) < 3:
        return []
    out = []
    for anchor in scene.objects:
        ref = unique_ref(anchor, scene, rng)
        if ref is None:
            continue

        def pred(o: SceneObject, sc: Scene, ref: Ref = ref) -> bool:
            a = ref.resolve(sc)
            return a is not None and o is not a and _nearest(o, a, sc)

        for t in hits(pred, scene):
            second = min(
                (x for x in scene.objects if x is not t and x is not anchor),
                key=lambda x: math.dist(x.centroid, anchor.centroid),
            )
            text = f"the {pick(rng, ('shape', 'object'))} {pick(rng, ('closest', 'nearest'))} to {ref.phrase}"
            steps = (
                f"{cap(ref.phrase)} is {where(anchor, scene)}. The shape nearest to it is {describe(t, scene)}; "
                f"the next closest, {describe(second, scene)}, is clearly farther away."
            )
            out.append(make_query("spatial_nearest", scene, t, text, steps, pred))
    return out


@template("spatial_between", "spatial")
def spatial_between(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    short = min(scene.width, scene.height)
    objs = scene.objects
    for i, a in enumerate(objs):
        for b in objs[i + 1 :]:
            ra, rb = unique_ref(a, scene, rng), unique_ref(b, scene, rng)
            if ra is None or rb is None or math.dist(a.centroid, b.centroid) < 0.3 * short:
                continue
            others = [o for o in objs if o is not a and o is not b]
            strict = [o for o in others if between(o, a, b, (0.25, 0.75), 0.15)]
            loose = [o for o in others if between(o, a, b, (0.1, 0.9), 0.35)]
            if len(strict) != 1 or len(loose) != 1:
                continue

            def pred(o: SceneObject, sc: Scene, ra: Ref = ra, rb: Ref = rb) -> bool:
                x, y = ra.resolve(sc), rb.resolve(sc)
                return (
                    x is not None
                    and y is not None
                    and o is not x
                    and o is not y
                    and between(o, x, y, (0.25, 0.75), 0.15)
                )

            t = strict[0]
            text = f"the {pick(rng, ('shape', 'object'))} between {ra.phrase} and {rb.phrase}"
            steps = (
                f"{cap(ra.phrase)} is {where(a, scene)} and {rb.phrase} is {where(b, scene)}. "
                f"The only shape on the way from one to the other is {describe(t, scene)}."
            )
            out.append(make_query("spatial_between", scene, t, text, steps, pred))
    return out
