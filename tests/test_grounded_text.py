"""The embedded recipe's stage-by-stage reading of grounded reasoning (recipes/embedded/grounded_text.py):
the generator's own grounded text passes every check, and each kind of error fails exactly its own."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "embedded"))

from grounded_text import grounded_diagnosis, read_grounded

from segzero_edge.synthetic import make_queries, render_scene, split_seed
from segzero_edge.synthetic.language import box840, grounded


def _grounded_samples(count: int = 12):
    out = []
    index = 0
    while len(out) < count:
        scene = render_scene(split_seed("val", index, 0), 256)
        index += 1
        with grounded():
            queries = make_queries(scene, np.random.default_rng([scene.seed, 1]))
        for q in queries[:2]:
            names = [o.name for o in scene.objects]
            boxes = [box840(o) for o in scene.objects]
            out.append((q.reasoning, names, boxes, q.target))
    return out


def test_the_generators_grounded_text_passes_every_stage():
    for text, names, boxes, target in _grounded_samples():
        reading = read_grounded(text)
        assert reading is not None and len(reading.listed) == len(names)
        assert reading.named == (names[target], boxes[target])
        diagnosis = grounded_diagnosis(text, boxes[target], names, boxes, target)
        assert diagnosis == {"listing_names_right": 1.0, "named_target": True, "answer_copies_named": True}


def test_each_error_fails_its_own_stage():
    text, names, boxes, target = next(
        s for s in _grounded_samples() if len(set(s[1])) == len(s[1]) and len(s[1]) >= 3  # distinct names
    )
    other = next(i for i in range(len(names)) if i != target)
    box_text = "[" + ",".join(str(v) for v in boxes[target]) + "]"

    # copy: the right name, another object's box in the answer
    copied = grounded_diagnosis(text, boxes[other], names, boxes, target)
    assert copied == {"listing_names_right": 1.0, "named_target": True, "answer_copies_named": False}

    # choice: the final sentence names another object (with that object's listed box)
    inventory, sep, rest = text.partition("]. ")
    other_box = "[" + ",".join(str(v) for v in boxes[other]) + "]"
    chose_other = inventory + sep + rest.replace(f"target is the {names[target]} {box_text}",
                                                 f"target is the {names[other]} {other_box}")
    assert chose_other != text
    chosen = grounded_diagnosis(chose_other, boxes[other], names, boxes, target)
    assert chosen == {"listing_names_right": 1.0, "named_target": False, "answer_copies_named": True}

    # perception: one listed entry carries a wrong colour
    wrong_colour = "purple" if not names[other].startswith("purple") else "orange"
    misnamed = text.replace(f"{names[other]} {other_box}", f"{wrong_colour} {names[other].split()[1]} {other_box}", 1)
    seen = grounded_diagnosis(misnamed, boxes[target], names, boxes, target)
    assert seen["listing_names_right"] == (len(names) - 1) / len(names)


def test_text_without_an_inventory_scores_zero():
    assert read_grounded("The red circle is on the left.") is None
    assert grounded_diagnosis("", None, ["red circle"], [(0, 0, 10, 10)], 0) == {
        "listing_names_right": 0.0, "named_target": False, "answer_copies_named": False}
    # an inventory but no final sentence: perception is still read, the choice is not
    diagnosis = grounded_diagnosis("I see 1 shapes: red circle [0,0,10,10].", (0, 0, 10, 10),
                                   ["red circle"], [(0, 0, 10, 10)], 0)
    assert diagnosis == {"listing_names_right": 1.0, "named_target": False, "answer_copies_named": False}
