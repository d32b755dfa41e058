"""Read the grounded reasoning the embedded reasoner writes, to split its errors by stage.

The SFT completions (`segzero_edge.synthetic.language`, grounded mode) list every object with
its 840-space box, reason, and end with the chosen one:

    I see 3 shapes: red circle [10,20,90,100], blue star [..], white ring [..]. <steps>
    So the target is the blue star [..].

and the answer JSON copies that box. A wrong answer is then one of three failures, measured
per sample against the scene's ground truth by `grounded_diagnosis`:

- perception: the listing names an object wrongly (colour or shape);
- choice: the final sentence names another object than the target;
- copy: the answer's box is not the box the listing gave the named object.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from segzero_edge.geometry import box_iou

Box = tuple[int, int, int, int]

_ENTRY = re.compile(r"([a-z]+ [a-z]+) \[(\d+),(\d+),(\d+),(\d+)\]")
_FINAL = re.compile(r"target is the ([a-z]+ [a-z]+) \[(\d+),(\d+),(\d+),(\d+)\]")


@dataclass(frozen=True)
class GroundedReasoning:
    listed: tuple[tuple[str, Box], ...]  # the inventory sentence: (name, box) in order
    named: tuple[str, Box] | None  # "So the target is the <name> [box]", when present


def read_grounded(think: str) -> GroundedReasoning | None:
    """The inventory and final choice of a grounded reasoning text; None when it has no
    "I see N shapes: ..." inventory with at least one boxed entry."""
    start = think.find("I see ")
    if start < 0:
        return None
    inventory, _, rest = think[start:].partition("]. ")  # the inventory ends after its last box
    listed = tuple((m[0], _box(m[1:])) for m in _ENTRY.findall(inventory + "]"))
    if not listed:
        return None
    finals = _FINAL.findall(rest)
    named = (finals[-1][0], _box(finals[-1][1:])) if finals else None
    return GroundedReasoning(listed, named)


def _box(values: Sequence[str]) -> Box:
    x1, y1, x2, y2 = (int(v) for v in values)
    return (x1, y1, x2, y2)


def grounded_diagnosis(
    think: str, answer_box: Box | None, names: Sequence[str], boxes: Sequence[Box], target: int
) -> dict[str, float | bool]:
    """Per-sample stage checks against the scene (`names`/`boxes` of every object, `target`'s index):

    - `listing_names_right`: the share of listed entries whose box overlaps an object (IoU > 0.5)
      and whose name is that object's (0.0 without an inventory);
    - `named_target`: the final sentence names the target's colour and shape;
    - `answer_copies_named`: the answer's box is a box the listing gave that name.
    """
    reading = read_grounded(think)
    if reading is None:
        return {"listing_names_right": 0.0, "named_target": False, "answer_copies_named": False}
    right = 0
    for name, box in reading.listed:
        overlaps = [box_iou(box, b) for b in boxes]
        best = max(range(len(boxes)), key=overlaps.__getitem__) if boxes else -1
        right += best >= 0 and overlaps[best] > 0.5 and names[best] == name
    named = reading.named
    return {
        "listing_names_right": right / len(reading.listed),
        "named_target": named is not None and named[0] == names[target],
        "answer_copies_named": named is not None
        and answer_box is not None
        and any(name == named[0] and box == tuple(answer_box) for name, box in reading.listed),
    }
