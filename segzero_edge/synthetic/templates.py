"""Query templates: each turns a scene into candidate queries with exactly one answer.

Every template is a named generator `fn(scene, rng) -> list[Query]` in one of six
families (size, spatial, unique, attribute, count, function). It emits a query only
when the answer is unique with a margin, and builds the matching predicate so that
uniqueness can be re-checked. `ZEROSHOT_TEMPLATES` are held out of train/val/test;
they recombine skills the others teach (ordinal sizes, a new relation, negation the
other way round, counting over the whole scene, knowledge plus colour).

Reasoning text never contains '<', '{' or '}': Seg-Zero extracts the thinking with
`<think>([^<]+)</think>` and the answer as the first `{...}` of the whole completion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from . import hints, spatial  # noqa: F401  (their templates register themselves)
from .language import (
    NUMBER,
    TIMES,
    Query,
    Ref,
    cap,
    clearly_larger,
    describe,
    extreme_size,
    listing,
    pick,
    plural,
)
from .registry import (
    FAMILIES,
    TEMPLATES,
    ZEROSHOT_TEMPLATES,
    fits,
    hits,
    make_query,
    of,
    only,
    template,
)
from .scene import Scene, SceneObject

# --- size -----------------------------------------------------------------------------


@template("size_extreme_colour", "size")
def size_extreme_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for c, n in Counter(o.colour for o in scene.objects).items():
        if n < 2:
            continue
        for largest in (True, False):
            pred = extreme_size(lambda o, c=c: o.colour == c, largest)
            for t in hits(pred, scene):
                word = pick(rng, ("largest", "biggest")) if largest else "smallest"
                steps = (
                    f"The {c} shapes are {listing(of(scene, c), scene)}. "
                    f"{cap(describe(t, scene))} is clearly the {'largest' if largest else 'smallest'} of them."
                )
                out.append(make_query("size_extreme_colour", scene, t, f"the {word} {c} shape", steps, pred))
    return out


@template("size_extreme_all", "size")
def size_extreme_all(scene: Scene, rng: np.random.Generator) -> list[Query]:
    if len(scene.objects) < 3:
        return []
    out = []
    for largest in (True, False):
        pred = extreme_size(lambda o: True, largest)
        for t in hits(pred, scene):
            ranked = sorted(scene.objects, key=lambda o: o.full_area, reverse=largest)
            word = pick(rng, ("largest", "biggest")) if largest else "smallest"
            noun = pick(rng, ("shape", "object"))
            steps = (
                f"Comparing sizes, {describe(t, scene)} is clearly {'larger' if largest else 'smaller'} "
                f"than the next one, {describe(ranked[1], scene)}."
            )
            out.append(make_query("size_extreme_all", scene, t, f"the {word} {noun}", steps, pred))
    return out


@template("size_pair_kind", "size")
def size_pair_kind(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for s, n in Counter(o.shape for o in scene.objects).items():
        if n != 2:
            continue
        for larger in (True, False):
            pred = extreme_size(lambda o, s=s: o.shape == s, larger)
            for t in hits(pred, scene):
                word = pick(rng, ("bigger", "larger")) if larger else "smaller"
                a, b = of(scene, shape=s)
                steps = (
                    f"The two {plural(s)} are {describe(a, scene)} and {describe(b, scene)}. "
                    f"{cap(describe(t, scene))} is clearly the {word} one."
                )
                out.append(
                    make_query("size_pair_kind", scene, t, f"the {word} of the two {plural(s)}", steps, pred)
                )
    return out


@template("size_second_extreme", "size")
def size_second_extreme(scene: Scene, rng: np.random.Generator) -> list[Query]:
    if len(scene.objects) < 3:
        return []
    out = []
    for largest in (True, False):

        def pred(o: SceneObject, sc: Scene, largest: bool = largest) -> bool:
            beats = (lambda a, b: clearly_larger(a, b)) if largest else (lambda a, b: clearly_larger(b, a))
            above = [x for x in sc.objects if x is not o and beats(x, o)]
            rest = [x for x in sc.objects if x is not o and x not in above]
            return len(above) == 1 and all(beats(o, x) for x in rest)

        for t in hits(pred, scene):
            first = next(
                x
                for x in scene.objects
                if x is not t and (clearly_larger(x, t) if largest else clearly_larger(t, x))
            )
            word = pick(rng, ("largest", "biggest")) if largest else "smallest"
            steps = (
                f"Comparing sizes, {describe(first, scene)} is clearly the {'largest' if largest else 'smallest'}, "
                f"and {describe(t, scene)} clearly comes next."
            )
            text = f"the second {word} {pick(rng, ('shape', 'object'))}"
            out.append(make_query("size_second_extreme", scene, t, text, steps, pred))
    return out


# --- uniqueness and attributes ------------------------------------------------------------


@template("unique_shape", "unique")
def unique_shape(scene: Scene, rng: np.random.Generator) -> list[Query]:
    if len(scene.objects) < 3:
        return []
    out = []
    for s, n in Counter(o.shape for o in scene.objects).items():
        if n == 1:
            pred = only("shape", s)
            t = of(scene, shape=s)[0]
            text = pick(rng, (f"the only {s}", f"the only {s} in the picture"))
            out.append(
                make_query(
                    "unique_shape", scene, t, text, f"Only one of them is a {s}: {describe(t, scene)}.", pred
                )
            )
    return out


@template("unique_colour", "unique")
def unique_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    if len(scene.objects) < 3:
        return []
    out = []
    for c, n in Counter(o.colour for o in scene.objects).items():
        if n == 1:
            pred = only("colour", c)
            t = of(scene, colour=c)[0]
            text = f"the only {c} {pick(rng, ('shape', 'object'))}"
            out.append(
                make_query(
                    "unique_colour", scene, t, text, f"Only one of them is {c}: {describe(t, scene)}.", pred
                )
            )
    return out


@template("attr_colour_shape", "attribute")
def attr_colour_shape(scene: Scene, rng: np.random.Generator) -> list[Query]:
    out = []
    for t in scene.objects:
        same_c, same_s = of(scene, colour=t.colour), of(scene, shape=t.shape)
        if len(same_c) < 2 or len(same_s) < 2 or len(of(scene, t.colour, t.shape)) != 1:
            continue
        pred = fits(Ref(t.colour, t.shape))
        steps = (
            f"The {t.colour} shapes are {listing(same_c, scene)}, and the {plural(t.shape)} are "
            f"{listing(same_s, scene)}. Only one is both {t.colour} and a {t.shape}."
        )
        out.append(make_query("attr_colour_shape", scene, t, f"the {t.colour} {t.shape}", steps, pred))
    return out


def _negation(tid: str, scene: Scene, by: str) -> list[Query]:
    """Among the objects sharing one attribute, the only one lacking a second attribute."""
    other = "shape" if by == "colour" else "colour"
    out = []
    for key, n in Counter(getattr(o, by) for o in scene.objects).items():
        members = [o for o in scene.objects if getattr(o, by) == key]
        if n < 2:
            continue
        for excluded in sorted({getattr(o, other) for o in members}):
            rest = [o for o in members if getattr(o, other) != excluded]
            if len(rest) != 1:
                continue

            def pred(o: SceneObject, sc: Scene, key: str = key, excluded: str = excluded) -> bool:
                return getattr(o, by) == key and getattr(o, other) != excluded

            t = rest[0]
            if by == "colour":
                text, group, gone = (
                    f"the {key} shape that is not a {excluded}",
                    f"{key} shapes",
                    plural(excluded),
                )
            else:
                text, group, gone = f"the {key} that is not {excluded}", plural(key), f"{excluded} ones"
            steps = f"The {group} are {listing(members, scene)}. Leaving out the {gone}, only one remains."
            out.append(make_query(tid, scene, t, text, steps, pred))
    return out


@template("attr_colour_not_shape", "attribute")
def attr_colour_not_shape(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _negation("attr_colour_not_shape", scene, "colour")


@template("attr_shape_not_colour", "attribute")
def attr_shape_not_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _negation("attr_shape_not_colour", scene, "shape")


# --- counting ---------------------------------------------------------------------------


def _count_phrase(counts: Counter[str], keys: list[str], noun: Callable[[str, int], str]) -> str:
    parts = [f"{NUMBER[counts[k]]} {noun(k, counts[k])}" for k in keys]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _counting(tid: str, scene: Scene, rng: np.random.Generator, group_by: str, count_by: str) -> list[Query]:
    """Among the objects sharing `group_by`, the only one whose `count_by` value occurs k times."""
    out = []
    totals = Counter(getattr(o, count_by) for o in scene.objects)
    for key, n in Counter(getattr(o, group_by) for o in scene.objects).items():
        if n < 2:
            continue
        members = [o for o in scene.objects if getattr(o, group_by) == key]
        for k in (1, 2, 3):
            hits = [o for o in members if totals[getattr(o, count_by)] == k]
            if len(hits) != 1:
                continue

            def pred(o: SceneObject, sc: Scene, key: str = key, k: int = k) -> bool:
                return (
                    getattr(o, group_by) == key
                    and sum(getattr(x, count_by) == getattr(o, count_by) for x in sc.objects) == k
                )

            t = hits[0]
            seen = sorted({getattr(o, count_by) for o in members})
            if count_by == "colour":
                text = f"the {key} whose colour appears {TIMES[k]}"
                tally = _count_phrase(totals, seen, lambda c, m: f"{c} shape" + ("s" if m > 1 else ""))
                steps = (
                    f"The {plural(key)} are {listing(members, scene)}. In the whole image there are {tally}."
                )
            else:
                text = f"the {key} shape whose {pick(rng, ('kind', 'type'))} appears {TIMES[k]}"
                tally = _count_phrase(totals, seen, lambda s, m: plural(s) if m > 1 else s)
                steps = (
                    f"The {key} shapes are {listing(members, scene)}. In the whole image there are {tally}."
                )
            steps += f" Only {describe(t, scene)} is of a {count_by} that appears {TIMES[k]}."
            out.append(make_query(tid, scene, t, text, steps, pred))
    return out


@template("count_colour_times", "count")
def count_colour_times(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _counting("count_colour_times", scene, rng, "shape", "colour")


@template("count_kind_times", "count")
def count_kind_times(scene: Scene, rng: np.random.Generator) -> list[Query]:
    return _counting("count_kind_times", scene, rng, "colour", "shape")


@template("count_unique_colour", "count")
def count_unique_colour(scene: Scene, rng: np.random.Generator) -> list[Query]:
    totals = Counter(o.colour for o in scene.objects)
    singles = [o for o in scene.objects if totals[o.colour] == 1]
    if len(scene.objects) < 3 or len(singles) != 1:
        return []

    def pred(o: SceneObject, sc: Scene) -> bool:
        return sum(x.colour == o.colour for x in sc.objects) == 1

    t = singles[0]
    text = pick(
        rng, ("the shape whose colour no other shape has", "the shape with a colour that appears only once")
    )
    tally = _count_phrase(totals, sorted(totals), lambda c, m: f"{c} shape" + ("s" if m > 1 else ""))
    steps = f"Counting colours, there are {tally}. Every colour but {t.colour} appears more than once."
    return [make_query("count_unique_colour", scene, t, text, steps, pred)]


# canonical order (family, then definition order): make_queries and info.json follow it
_ordered = sorted(TEMPLATES.values(), key=lambda t: FAMILIES.index(t.family))
TEMPLATES.clear()
TEMPLATES.update((t.id, t) for t in _ordered)

SEEN_TEMPLATES: tuple[str, ...] = tuple(t for t in TEMPLATES if t not in ZEROSHOT_TEMPLATES)
if set(ZEROSHOT_TEMPLATES) - set(TEMPLATES):  # a typo would silently empty the zero-shot split
    raise RuntimeError(f"unknown zero-shot template ids: {sorted(set(ZEROSHOT_TEMPLATES) - set(TEMPLATES))}")
