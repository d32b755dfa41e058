"""The TRL reward adapters give exactly the per-sample Seg-Zero rewards."""

from __future__ import annotations

import sys
import types

import pytest

from segzero_edge.rewards import REWARDS, SEG_ZERO_COMPONENTS, seg_zero
from segzero_edge.train.rewards import completion_text, import_reward, make_reward, reward_functions

GOOD = '<think>the mug</think><answer>{"bbox": [100,100,200,200], "points_1": [120,130], "points_2": [180,170]}</answer>'
TEXTS = [
    GOOD,
    GOOD.replace("[100,100,200,200]", "[104,96,203,201]"),  # IoU yes, L1 < 10
    GOOD.replace("[100,100,200,200]", "[130,130,260,260]"),  # IoU no
    "<think>x</think><answer>none</answer>",
    '{"bbox": [100,100,200,200], "points_1": [120,130], "points_2": [180,170]}',  # no tags
    "<think>a</think><answer>{'bbox': [1,2,3,4]}</answer>",  # single quotes: not JSON
    "",
]
GT_BOXES = [
    [100, 100, 200, 200],
    [100, 100, 200, 200],
    [100, 100, 200, 200],
    [0, 0, 5, 5],
    None,
    [1, 2, 3, 4],
    [0, 0, 1, 1],
]
GT_POINTS = [
    [[120, 130], [180, 170]],
    [[125, 135], [175, 165]],
    None,
    [[1, 1], [2, 2]],
    [[120, 130], [180, 170]],
    None,
    [[0, 0], [1, 1]],
]


def as_messages(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("name", sorted(REWARDS))
@pytest.mark.parametrize("form", ["messages", "string", "content parts"])
def test_adapter_equals_per_sample_reward(name: str, form: str):
    completions = {
        "messages": [as_messages(t) for t in TEXTS],
        "string": list(TEXTS),
        "content parts": [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in TEXTS],
    }[form]
    got = make_reward(name)(
        prompts=[None] * len(TEXTS),
        completions=completions,
        completion_ids=[[1]] * len(TEXTS),
        gt_bbox=GT_BOXES,
        gt_points=GT_POINTS,
        image=[None] * len(TEXTS),
        query=["q"] * len(TEXTS),
        trainer_state=None,
        log_extra=None,
        log_metric=None,
    )
    want = [REWARDS[name](t, b, p) for t, b, p in zip(TEXTS, GT_BOXES, GT_POINTS, strict=True)]
    assert got == want
    assert all(isinstance(v, float) for v in got)


def test_the_table_is_not_trivial():
    # the fixtures above exercise both outcomes of every component
    for name in SEG_ZERO_COMPONENTS:
        values = {REWARDS[name](t, b, p) for t, b, p in zip(TEXTS, GT_BOXES, GT_POINTS, strict=True)}
        assert values == {0.0, 1.0}, name


def test_components_sum_to_seg_zero():
    funcs = reward_functions()
    completions = [as_messages(t) for t in TEXTS]
    per_func = [f(completions=completions, gt_bbox=GT_BOXES, gt_points=GT_POINTS) for f in funcs]
    totals = [sum(col) for col in zip(*per_func, strict=True)]
    assert totals == [seg_zero(t, b, p) for t, b, p in zip(TEXTS, GT_BOXES, GT_POINTS, strict=True)]
    assert totals[0] == 5.0


def test_names_are_what_trl_logs():
    funcs = reward_functions(SEG_ZERO_COMPONENTS)
    assert [f.__name__ for f in funcs] == list(SEG_ZERO_COMPONENTS)


def test_missing_ground_truth_columns_score_zero():
    assert make_reward("bbox_iou")(completions=[as_messages(GOOD)]) == [0.0]
    assert make_reward("think_format")(completions=[as_messages(GOOD)]) == [1.0]


def test_column_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="gt_bbox"):
        make_reward("bbox_iou")(completions=[GOOD, GOOD], gt_bbox=[[1, 2, 3, 4]])


def test_bad_completion_type():
    with pytest.raises(TypeError, match="completion"):
        completion_text(42)


def test_unknown_repeated_and_empty_rewards():
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        reward_functions(["nope"])
    with pytest.raises(ValueError, match="repeat"):
        reward_functions(["bbox_iou", "bbox_iou"])
    with pytest.raises(ValueError, match="at least one"):
        reward_functions([])


def test_import_spec(monkeypatch):
    module = types.ModuleType("my_rewards_mod")

    def shaped(completions, **_):
        return [0.5 for _ in completions]

    module.shaped = shaped
    monkeypatch.setitem(sys.modules, "my_rewards_mod", module)
    funcs = reward_functions(["think_format", "my_rewards_mod:shaped"])
    assert funcs[1] is shaped
    with pytest.raises(ValueError, match="no callable 'missing'"):
        import_reward("my_rewards_mod:missing")
