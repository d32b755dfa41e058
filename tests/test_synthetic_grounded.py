"""Grounded reasoning text (the embedded default's SFT targets): every object with its 840-space box."""

from __future__ import annotations

import re

from segzero_edge.rewards import seg_zero
from segzero_edge.synthetic import generate_split
from segzero_edge.synthetic.language import box840, grounded, is_grounded

BOX = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")


def test_grounded_completions_list_every_box_and_copy_the_target():
    with grounded():
        assert is_grounded()
        samples = list(generate_split("val", 12, seed=0, size=512))
        texts = [s.completion for s in samples]
    assert not is_grounded()
    for sample, text in zip(samples, texts, strict=True):
        thinking = text[text.index("<think>") + 7 : text.index("</think>")]
        listed = thinking.split(". ")[0]
        boxes = [tuple(map(int, m)) for m in BOX.findall(listed)]
        # the inventory names each object once, by left box edge, with its Seg-Zero ground-truth box
        assert len(boxes) == len(sample.scene.objects)
        assert sorted(boxes) == sorted(box840(o) for o in sample.scene.objects)
        assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)
        # the last sentence names the target with the answer's box
        assert thinking.rstrip(".").endswith(str(list(sample.bbox)).replace(" ", ""))
        assert seg_zero(text, list(sample.bbox), [list(p) for p in sample.points]) == 5.0


def test_plain_reasoning_is_unchanged_outside_the_block():
    plain = [s.query.reasoning for s in generate_split("val", 6, seed=0, size=512)]
    with grounded():
        generate_split_grounded = [s.query.reasoning for s in generate_split("val", 6, seed=0, size=512)]
    again = [s.query.reasoning for s in generate_split("val", 6, seed=0, size=512)]
    assert plain == again
    assert all("[" not in r for r in plain)
    assert all("[" in r for r in generate_split_grounded)
