"""Seg-Zero's multi-object rewards: table cases with hand-computed values built from the
original source, and thousands of generated outputs compared with the verbatim reference
transcription (`segzero_reference_multi.py`), with scipy's and the numpy assignment solver."""

from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pytest
import segzero_reference_multi as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment as scipy_lsa

from segzero_edge import rewards_multi
from segzero_edge.assignment import numpy_linear_sum_assignment
from segzero_edge.rewards_multi import (
    REWARDS_MULTI,
    VISION_REASONER_COMPONENTS,
    accuracy,
    non_repeat,
    seg_format,
    think_format,
    vision_reasoner,
)


def obj(box, point) -> dict:
    return {"bbox_2d": list(box), "point_2d": list(point)}


def wrap(answer, think: str = "two red shapes match") -> str:
    body = answer if isinstance(answer, str) else json.dumps(answer)
    return f"<think>{think}</think><answer>{body}</answer>"


A = obj([100, 100, 200, 200], [150, 150])
B = obj([400, 300, 600, 500], [500, 400])
GT_AB = json.dumps([A, B])
GT_A = json.dumps([A])
# Greedy matching fails here; the Hungarian one does not (costs A-G1 0, A-G2 1, B-G1 1, B-G2 3).
G1, G2 = obj([0, 0, 100, 100], [50, 50]), obj([0, 0, 100, 150], [50, 75])
PA, PB = obj([0, 0, 100, 100], [50, 60]), obj([0, 0, 100, 60], [50, 40])

# (name, text, solution, think, seg, accuracy, non_repeat)
CASES = [
    ("source __main__ example", '\n<answer>\n[{"bbox_2d": [10, 100, 398, 423], "point_2d": [283, 169]}]\n</answer>\n',
     '\n[{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]}]', 0, 2, 0, 1),
    ("perfect, one object", wrap([A]), GT_A, 1, 2, 3, 1),
    ("perfect, two objects", wrap([A, B]), GT_AB, 1, 2, 3, 1),
    ("order does not matter", wrap([B, A]), GT_AB, 1, 2, 3, 1),
    ("one of two found", wrap([A]), GT_AB, 1, 2, 1.5, 1),
    ("one extra prediction", wrap([A, B]), GT_A, 1, 2, 1.5, 1),
    ("hungarian beats greedy", wrap([PA, PB]), json.dumps([G1, G2]), 1, 2, 2.0, 1),
    ("IoU exactly 0.5 (+1 areas) fails", wrap([obj([0, 0, 9, 9], [5, 5])]), json.dumps([obj([0, 0, 9, 19], [5, 5])]), 1, 2, 2, 1),
    ("L1 exactly 10 fails", wrap([obj([110, 110, 210, 210], [150, 150])]), GT_A, 1, 2, 2, 1),
    ("point 29.x away counts", wrap([obj([100, 100, 200, 200], [171, 171])]), GT_A, 1, 2, 3, 1),
    ("point 30 away fails", wrap([obj([100, 100, 200, 200], [150, 180])]), GT_A, 1, 2, 2, 1),
    ("point outside its own box", wrap([obj([100, 100, 200, 140], [150, 150])]), GT_A, 1, 2, 0, 1),
    ("float coordinates", wrap([obj([100.4, 99.6, 200.0, 200.2], [150.5, 150.5])]), GT_A, 1, 2, 3, 1),
    ("empty list", wrap([]), GT_A, 1, 0, 0, 1),
    ("empty ground truth", wrap([A]), "[]", 1, 2, 0, 1),
    ("object, not list", wrap(A), GT_A, 1, 0, 0, 1),
    ("partial sum survives", wrap('[{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}, 5]'), GT_A, 1, 1, 0, 1),
    ("bbox of 3", wrap([obj([100, 100, 200], [150, 150])]), GT_A, 1, 1, 0, 1),
    ("point of 3", wrap([obj([100, 100, 200, 200], [150, 150, 1])]), GT_A, 1, 1, 0, 1),
    ("missing point_2d", wrap([{"bbox_2d": [100, 100, 200, 200]}]), GT_A, 1, 1, 0, 1),
    ("string coordinates", wrap([obj(["100", "100", "200", "200"], [150, 150])]), GT_A, 1, 2, 0, 1),
    ("ten point-only items sum to 0.999...", wrap([{"point_2d": [1, 1]}] * 10), GT_A, 1, sum([0.1] * 10), 0, 1),
    ("no answer tags", json.dumps([A]), GT_A, 0, 0, 0, 1),
    ("text after the answer", wrap([A]) + " ok", GT_A, 0, 2, 3, 1),
    # fullmatch lets the lazy .*? run across both blocks: the format still counts
    ("first answer block counts", wrap("nope") + f"<answer>{json.dumps([A])}</answer>", GT_A, 1, 0, 0, 1),
    ("truncated JSON", wrap(json.dumps([A])[:-3]), GT_A, 1, 0, 0, 1),
    ("bad ground truth", wrap([A]), "<box>(1,2),(3,4)</box>", 1, 2, 0, 1),
    ("repeated sentences", wrap([A], "so. it is red. it is red. it is red. end"), GT_A, 1, 2, 3, 0),
    ("one repeat is fine", wrap([A], "it is red. it is red. done"), GT_A, 1, 2, 3, 1),
    ("decimal points split sentences", wrap([obj([1.0, 1.0, 1.0, 1.0], [1, 1])]), GT_A, 1, 2, 0, 0),
    ("empty", "", GT_A, 0, 0, 0, 1),
]


@pytest.mark.parametrize(("name", "text", "solution", "think", "seg", "acc", "rep"), CASES, ids=[c[0] for c in CASES])
def test_table(name, text, solution, think, seg, acc, rep):
    assert think_format(text) == think
    assert seg_format(text) == seg
    assert accuracy(text, solution) == acc
    assert non_repeat(text) == rep
    assert vision_reasoner(text, solution) == think + seg + acc + rep
    # the verbatim original gives the same numbers
    assert ref.vision_reasoner_format_reward(text) == think + seg
    assert ref.vision_reasoner_accuracy_reward(text, solution) == acc
    assert ref.vision_reasoner_non_repeat_reward(text) == rep
    assert ref.vision_reasoner_compute_score(text, solution) == vision_reasoner(text, solution)


def test_objects_beyond_120_are_dropped_before_matching():
    gt = [obj([i, i, i + 50, i + 50], [i + 25, i + 25]) for i in range(130)]
    assert accuracy(wrap(gt), json.dumps(gt)) == 3.0  # 120 vs 120, all matched
    # the only correct prediction is number 121: truncated away, so 0 rather than 3/121
    miss = [obj([800, 800, 801, 801], [800, 800])] * 120 + [gt[0]]
    assert accuracy(wrap(miss), json.dumps(gt[:1])) == 0.0
    assert ref.vision_reasoner_accuracy_reward(wrap(miss), json.dumps(gt[:1])) == 0.0


def test_maximum_is_seven_and_the_sum_order_is_the_originals():
    assert vision_reasoner(wrap([A, B]), GT_AB) == 7.0
    text = wrap([{"point_2d": [1, 1]}] * 10)
    assert vision_reasoner(text, GT_A) == (1.0 + sum([0.1] * 10)) + 0.0 + 1.0


def test_non_string_completion_is_a_type_error():
    for fn in (think_format, seg_format, non_repeat):
        with pytest.raises(TypeError, match="must be a string"):
            fn(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a string"):
        vision_reasoner(b"<think>", GT_A)  # type: ignore[arg-type]


def test_registry_names_and_components():
    assert set(REWARDS_MULTI) == {"seg_format", "accuracy", "non_repeat", "vision_reasoner"}
    text = wrap([A])
    parts = [REWARDS_MULTI[n](text, GT_AB) if n in REWARDS_MULTI else think_format(text) for n in VISION_REASONER_COMPONENTS]
    assert parts == [1.0, 2.0, 1.5, 1.0]
    assert REWARDS_MULTI["vision_reasoner"](text, GT_AB) == sum(parts)


# --- the assignment solver ------------------------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(st.integers(0, 9), st.integers(0, 9), st.integers(0, 2**32 - 1), st.booleans())
def test_numpy_assignment_finds_scipys_optimum(n, m, seed, real):
    rng = np.random.default_rng(seed)
    cost = rng.random((n, m)) if real else rng.integers(0, 4, (n, m)).astype(float)
    rows, cols = numpy_linear_sum_assignment(cost)
    srows, scols = scipy_lsa(cost)
    assert len(rows) == min(n, m) and list(rows) == sorted(rows) and len(set(cols)) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(cost[srows, scols].sum(), abs=1e-12)
    if not real:  # small integers: the optimum is exact
        assert cost[rows, cols].sum() == cost[srows, scols].sum()


def test_numpy_assignment_large_and_invalid():
    rng = np.random.default_rng(3)
    cost = rng.integers(0, 4, (120, 97)).astype(float)
    rows, cols = numpy_linear_sum_assignment(cost)
    srows, scols = scipy_lsa(cost)
    assert cost[rows, cols].sum() == cost[srows, scols].sum()
    for bad, message in (
        (np.zeros((2, 2, 2)), "2-D"),
        (np.array([["a", "b"]]), "numerical"),
        (np.array([[np.nan, 1.0]]), "invalid numeric"),
        (np.array([[np.inf, np.inf], [np.inf, np.inf]]), "infeasible"),
    ):
        with pytest.raises((ValueError, TypeError), match=message):
            numpy_linear_sum_assignment(bad)
        with pytest.raises((ValueError, TypeError)):
            scipy_lsa(bad)


# --- generated outputs against the reference transcription ------------------------------------

coord = st.one_of(
    st.integers(-20, 860),
    st.floats(-20, 860, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), True, None, "12", [1, 2]]),
)
good_objects = st.builds(
    lambda x, y, w, h, px, py: obj([x, y, x + w, y + h], [x + px * w // 100, y + py * h // 100]),
    st.integers(0, 700), st.integers(0, 700), st.integers(1, 140), st.integers(1, 140),
    st.integers(-10, 110), st.integers(-10, 110),
)
odd_items = st.one_of(
    st.dictionaries(st.sampled_from(["bbox_2d", "point_2d", "bbox", "label"]),
                    st.one_of(st.lists(coord, max_size=5), coord), max_size=3),
    st.sampled_from([5, "bbox_2d", None, [], ["point_2d"], {}]),
)


def _jitter(draw, item: dict) -> dict:
    shift = draw(st.integers(-25, 25))
    return obj([v + shift for v in item["bbox_2d"]], [v + draw(st.integers(-35, 35)) for v in item["point_2d"]])


@st.composite
def samples(draw) -> tuple[str, str]:
    gt = draw(st.lists(good_objects, min_size=1, max_size=5))
    # sampled_from leans to its first entry (hypothesis' simplest): put the usual case first
    pred = [_jitter(draw, g) if draw(st.booleans()) else g for g in gt if draw(st.sampled_from([True] * 4 + [False]))]
    pred += draw(st.lists(st.one_of(good_objects, odd_items), max_size=draw(st.sampled_from([0, 0, 3]))))
    pred = draw(st.permutations(pred))
    answer = draw(st.sampled_from(["list"] * 7 + ["dict", "string", "number"]))
    value = {"list": pred, "dict": pred[0] if pred else {}, "string": "bbox_2d", "number": 3}[answer]
    body = json.dumps(value, indent=draw(st.sampled_from([None, None, 1])))
    if draw(st.sampled_from([False] * 9 + [True])):  # cut off, as a model at max_new_tokens would be
        body = body[: draw(st.integers(0, len(body)))]
    think = draw(st.sampled_from(["x", "", "a. a.", "a. a. a. a", "It is red. So it is."]))
    text = draw(st.sampled_from(["<think>", "", "<think> "])) + think + draw(st.sampled_from(["</think>", "", "</think>\n"]))
    text += draw(st.sampled_from(["<answer>"] * 4 + ["<answer>\n", ""])) + body
    text += draw(st.sampled_from(["</answer>"] * 4 + ["\n</answer>", "", "</answer>."]))
    solution = json.dumps(gt) if draw(st.sampled_from([True] * 9 + [False])) else draw(st.sampled_from(["", "[]", "{}", "[1]", json.dumps([{"bbox_2d": [1, 2, 3, 4]}])]))
    return text, solution


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(samples())
def test_generated_outputs_equal_the_original(sample):
    text, solution = sample
    values = {
        "format": think_format(text) + seg_format(text),
        "accuracy": accuracy(text, solution),
        "non_repeat": non_repeat(text),
        "total": vision_reasoner(text, solution),
    }
    expected = {
        "format": ref.vision_reasoner_format_reward(text),
        "accuracy": ref.vision_reasoner_accuracy_reward(text, solution),
        "non_repeat": ref.vision_reasoner_non_repeat_reward(text),
        "total": ref.vision_reasoner_compute_score(text, solution),
    }
    for key, value in values.items():
        assert isinstance(value, float)
        assert _same(value, float(expected[key])), (key, value, expected[key])
    assert 0.0 <= values["total"] <= 7.0
    with mock.patch.object(rewards_multi, "linear_sum_assignment", numpy_linear_sum_assignment):
        assert _same(accuracy(text, solution), values["accuracy"])


def test_runtime_only_install_scores_without_scipy():
    """The base install has no scipy: the reward falls back to the numpy solver, same value."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "sys.modules['scipy'] = None; sys.modules['scipy.optimize'] = None\n"
        "from segzero_edge.rewards_multi import accuracy\n"
        f"print(accuracy({wrap([PA, PB])!r}, {json.dumps([G1, G2])!r}), 'scipy' in sys.modules and sys.modules['scipy'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2.0", "False"]
