"""The synthetic domain's multi-object split: multi-target and no-target queries whose answers
are exact, Seg-Zero's multi-object ground truth, and the ReasonSeg-style files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segzero_edge.answer import parse_multi_answer
from segzero_edge.cli import main
from segzero_edge.evaldata import read_eval_set
from segzero_edge.geometry import mask_bbox
from segzero_edge.multi_truth import instance_truth, parse_solution_multi
from segzero_edge.rewards_multi import vision_reasoner
from segzero_edge.synthetic import render_scene
from segzero_edge.synthetic.language import POSITION_MARGIN
from segzero_edge.synthetic.multi_dataset import (
    MULTI_SPLITS,
    format_multi_completion,
    generate_multi_split,
    write_multi_dataset,
)
from segzero_edge.synthetic.multi_queries import MULTI_TEMPLATES, make_multi_queries

SIZE = 256


@pytest.fixture(scope="module")
def samples():
    return list(generate_multi_split("val", 24, seed=3, size=SIZE))


def test_queries_select_exactly_their_targets_on_many_scenes():
    seen: dict[str, int] = {}
    for seed in range(40):
        scene = render_scene(seed, SIZE)
        for family in ("multi", "none"):
            for q in make_multi_queries(scene, np.random.default_rng([seed, 2]), family):
                assert sorted(q.matches(scene)) == sorted(q.targets)
                assert (family == "none") == (len(q.targets) == 0)
                assert [scene.objects[i].centroid[0] for i in q.targets] == sorted(scene.objects[i].centroid[0] for i in q.targets)
                seen[q.template] = seen.get(q.template, 0) + 1
    assert set(seen) == set(MULTI_TEMPLATES)  # every template fires somewhere


def test_side_queries_keep_a_margin():
    """No object sits near the dividing line through the anchor: every answer is obvious."""
    axes = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
    checked = 0
    for seed in range(30):
        scene = render_scene(seed, SIZE)
        for family in ("multi", "none"):
            for q in make_multi_queries(scene, np.random.default_rng([seed, 2]), family):
                if not q.template.endswith("_side"):
                    continue
                anchor = scene.objects[q.anchor]
                (axis, sign), = (v for k, v in axes.items() if f" {k} " in q.text)
                for o in scene.objects:
                    if o is anchor:
                        continue
                    offset = sign * (o.centroid[axis] - anchor.centroid[axis])
                    assert abs(offset) >= POSITION_MARGIN * SIZE
                    assert (offset > 0) == (o.index in q.targets)
                checked += 1
    assert checked > 20


def test_rows_completions_and_ground_truth(samples):
    families = {s.query.family for s in samples}
    assert families == {"multi", "none"}
    assert any(len(s.query.targets) > 1 for s in samples)
    for s in samples:
        row = s.row()
        objects = parse_solution_multi(row["solution"])
        assert objects == [instance_truth(s.scene.objects[i].mask) for i in s.query.targets]
        expected_mask = np.zeros((SIZE, SIZE), bool)
        for i in s.query.targets:
            expected_mask |= s.scene.objects[i].mask
        assert np.array_equal(s.mask, expected_mask)
        box = mask_bbox(expected_mask)
        assert row["bbox"] == (list(box) if box else None)
        answer = parse_multi_answer(row["completion"])
        assert [(o.bbox, o.point) for o in answer.objects] == [(o.bbox, o.point) for o in objects]
        # the templated completion is a perfect answer under Seg-Zero's reward
        assert vision_reasoner(row["completion"], row["solution"]) == (7.0 if objects else 2.0)
        assert row["num_targets"] == len(row["targets"]) == len(objects)
        assert len(s.instance_row()["masks"]) == len(objects)


def test_completion_format():
    from segzero_edge.multi_truth import ObjectTruth

    text = format_multi_completion("two.", [ObjectTruth((1, 2, 3, 4), (2, 3)), ObjectTruth((5, 6, 7, 8), (6, 7))])
    assert text == '<think>two.</think><answer>[{"bbox_2d": [1,2,3,4], "point_2d": [2,3]}, {"bbox_2d": [5,6,7,8], "point_2d": [6,7]}]</answer>'
    assert format_multi_completion("none.", []) == "<think>none.</think><answer>[]</answer>"
    with pytest.raises(ValueError, match="free of"):
        format_multi_completion("a < b", [])


def test_deterministic_and_split_checks(samples):
    again = list(generate_multi_split("val", 24, seed=3, size=SIZE))
    assert [s.row()["completion"] for s in again] == [s.row()["completion"] for s in samples]
    test_seeds = {s.scene.seed for s in generate_multi_split("test", 5, seed=3, size=SIZE)}
    assert not test_seeds & {s.scene.seed for s in samples}
    assert MULTI_SPLITS == ("train", "val", "test")
    with pytest.raises(ValueError, match="multi-object splits"):
        next(generate_multi_split("zeroshot", 1))
    with pytest.raises(ValueError, match="no_target_rate"):
        next(generate_multi_split("val", 1, no_target_rate=2.0))
    assert all(s.query.family == "multi" for s in generate_multi_split("train", 6, size=SIZE, no_target_rate=0.0))


def test_written_split_reads_as_an_eval_set(tmp_path):
    info = write_multi_dataset(tmp_path / "multi", {"val": 6, "test": 3}, size=SIZE, seed=1, progress=False, no_target_rate=0.5)
    assert info["splits"]["val"]["rows"] == 6 and (tmp_path / "multi" / "README.md").is_file()
    rows = list(generate_multi_split("val", 6, seed=1, size=SIZE, no_target_rate=0.5))
    samples = list(read_eval_set(tmp_path / "multi" / "val.parquet"))
    assert [s.query for s in samples] == [r.query.text for r in rows]
    for sample, row in zip(samples, rows, strict=True):
        assert np.array_equal(sample.mask, row.mask)
        assert sample.bbox == (tuple(mask_bbox(row.mask)) if row.query.targets else None)
    with pytest.raises(FileExistsError):
        write_multi_dataset(tmp_path / "multi", {"val": 1}, size=SIZE, progress=False)


def test_synth_cli_multi(tmp_path, capsys):
    out = tmp_path / "m"
    code = main(["synth", "--out", str(out), "--answer-format", "multi", "--train", "2", "--val", "1", "--test", "1",
                 "--size", str(SIZE), "--no-progress", "--no-target-rate", "0"])  # fmt: skip
    assert code == 0 and sorted(p.name for p in out.glob("*.parquet")) == ["test.parquet", "train.parquet", "val.parquet"]
    assert "no zero-shot split" in capsys.readouterr().out
    info = json.loads((out / "info.json").read_text())
    assert info["answer_format"] == "multi" and info["no_target_rate"] == 0.0
    assert main(["synth", "--out", str(tmp_path / "x"), "--no-target-rate", "0.2", "--train", "1"]) == 2
