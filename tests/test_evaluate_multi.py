"""Multi-object evaluation: Seg-Zero's evaluation_visionreasoner.py semantics on a small
parquet set, checked against hand computation; the box metric and the no-target switch."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import segzero_reference_multi as ref
from fakes import BoxSegmenter, ScriptedReasoner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segzero_edge.eval_multi import MultiMeter, box_hit, enclosing_box, eval_box_iou, score_sample
from segzero_edge.eval_results import ResultsMismatch
from segzero_edge.evaldata import DataError, read_eval_set
from segzero_edge.evaluate import evaluate
from segzero_edge.pipeline import ReasoningPipeline

SIZE = 840


def answer(*boxes, think: str = "looked") -> str:
    objects = [{"bbox_2d": list(b), "point_2d": [(b[0] + b[2]) // 2, (b[1] + b[3]) // 2]} for b in boxes]
    return f"<think>{think}</think><answer>{json.dumps(objects)}</answer>"


def mask_of(*boxes) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    for x1, y1, x2, y2 in boxes:
        m[y1 : y2 + 1, x1 : x2 + 1] = True
    return m


# (dataset query, GT boxes (inclusive pixels), the data's bbox column, scripted answer)
ROWS = [
    ("The two squares.", [(100, 100, 199, 199), (300, 100, 399, 199)], [100, 100, 399, 199],
     answer((100, 100, 199, 199), (300, 100, 399, 199))),
    ("the lost thing", [(300, 300, 399, 349)], [300, 300, 399, 349], "<think>hmm</think>no answer"),
    ('No such "shape"?', [], None, answer()),
    ("nothing here either", [], None, answer((500, 500, 599, 599))),
]  # fmt: skip
# BoxSegmenter keeps each box shrunk by 2 px (96x96 of 100x100). Row 0: I = 2*9216, U = 2*10000.
# Row 1 fails: I = 0, U = 5000. Row 2: both empty. Row 3: I = 0, U = 9216 (the predicted square).
I0, U0, U1, U3 = 2 * 9216, 20000, 5000, 9216


@pytest.fixture
def data(tmp_path):
    png = io.BytesIO()
    Image.fromarray(np.full((SIZE, SIZE, 3), 128, np.uint8)).save(png, format="PNG")
    table = pa.table(
        {
            "image": [{"bytes": png.getvalue(), "path": None} for _ in ROWS],
            "text": [q for q, _, _, _ in ROWS],
            "mask": [mask_of(*b).astype(np.uint8).tolist() for _, b, _, _ in ROWS],
            "bbox": [box for _, _, box, _ in ROWS],
            "image_id": [f"img{i}" for i in range(len(ROWS))],
            "ann_id": [str(i) for i in range(len(ROWS))],
        }
    )
    path = tmp_path / "multi.parquet"
    pq.write_table(table, path)
    return path


def _pipeline() -> tuple[ReasoningPipeline, ScriptedReasoner]:
    # keys: the queries as evaluation_visionreasoner.py hands them to the template (lower, strip .\"?!)
    answers = {q.lower().strip('."?!'): a for q, _, _, a in ROWS}
    reasoner = ScriptedReasoner(answers)
    return ReasoningPipeline(reasoner, BoxSegmenter(), answer_format="multi"), reasoner


def test_seg_zero_semantics(data, tmp_path):
    pipe, _ = _pipeline()
    summary = evaluate(pipe, read_eval_set(data), tmp_path / "r.jsonl", progress=False)
    assert (summary.count, summary.skipped, summary.failed) == (3, 1, 1)
    assert summary.giou == pytest.approx((I0 / U0 + 0 + 0) / 3)
    assert summary.ciou == pytest.approx(I0 / (U0 + U1 + U3))
    # row 0's GT box encloses both squares: neither predicted square has IoU > 0.5 with it
    assert summary.box_accuracy == 0.0 and summary.box_count == 2
    assert summary.n_acc is None
    header, *records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    settings = {k: header["provenance"][k] for k in ("answer_format", "no_target", "box_metric")}
    assert settings == {"answer_format": "multi", "no_target": False, "box_metric": "any"}
    assert [(r["intersection"], r["union"]) for r in records] == [(I0, U0), (0, U1), (0, 0), (0, U3)]
    assert records[0]["objects"][1] == {"bbox": [300, 100, 399, 199], "point": [349, 149], "score": pytest.approx(0.9)}
    assert records[1]["ok"] is False and "no <answer>" in records[1]["error"]
    assert records[2]["iou"] is None and records[2]["query"] == 'No such "shape"?'


def test_enclosing_box_and_no_target(data):
    pipe, _ = _pipeline()
    summary = evaluate(pipe, read_eval_set(data), progress=False, no_target=True, box_metric="any-or-enclosing")
    assert summary.box_accuracy == 0.5  # row 0 hits through the enclosing box; row 1 failed
    assert summary.count == 4 and summary.skipped == 0  # the empty-GT rows now count
    assert summary.giou == pytest.approx((I0 / U0 + 0 + 1 + 0) / 4)
    assert summary.ciou == pytest.approx(I0 / (U0 + U1 + U3))
    assert summary.n_acc == 0.5 and summary.no_target_count == 2
    assert summary.line().endswith("box=0.5000 (n=2) N-Acc=0.5000 (n=2)")


def test_resume_and_settings_guard(data, tmp_path):
    out = tmp_path / "r.jsonl"
    pipe, _ = _pipeline()
    first = evaluate(pipe, read_eval_set(data, limit=2), out, progress=False, no_target=True)
    assert first.count == 2
    pipe2, reasoner2 = _pipeline()
    full = evaluate(pipe2, read_eval_set(data), out, progress=False, no_target=True)
    assert full.resumed == 2 and reasoner2.generate_calls == 2
    again = evaluate(*_pipeline()[:1], read_eval_set(data), progress=False, no_target=True)
    assert (full.giou, full.ciou, full.n_acc, full.box_accuracy) == (again.giou, again.ciou, again.n_acc, again.box_accuracy)
    # one resume mechanism: the header's provenance holds the format and the switches
    with pytest.raises(ResultsMismatch, match="no_target True -> False"):
        evaluate(_pipeline()[0], read_eval_set(data), out, progress=False, no_target=False)
    with pytest.raises(ResultsMismatch, match="box_metric 'any' -> 'any-or-enclosing'"):
        evaluate(_pipeline()[0], read_eval_set(data), out, progress=False, no_target=True, box_metric="any-or-enclosing")
    single = ReasoningPipeline(ScriptedReasoner(""), BoxSegmenter())
    with pytest.raises(ResultsMismatch, match="answer_format 'multi' -> 'single'"):
        evaluate(single, read_eval_set(data), out, progress=False)
    restarted = evaluate(_pipeline()[0], read_eval_set(data), out, progress=False, restart=True)
    assert restarted.resumed == 0 and restarted.count == 3
    with pytest.raises(ValueError, match="apply to multi-object answers"):
        evaluate(single, read_eval_set(data), progress=False, no_target=True)


def test_bbox_column_is_read_and_checked(data, tmp_path):
    assert [s.bbox for s in read_eval_set(data)] == [(100, 100, 399, 199), (300, 300, 399, 349), None, None]
    bad = pa.table({"image": [None], "text": ["q"], "mask": [[[0]]], "bbox": [[1, 2, 3]]})
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="bbox must be"):
        next(iter(read_eval_set(tmp_path / "bad.parquet")))


def test_score_sample_rules():
    gt = mask_of((10, 10, 19, 19))
    empty = np.zeros_like(gt)
    # failure: I = 0, U = |GT|; a box miss
    s = score_sample(None, [], gt, (10, 10, 20, 20))
    assert (s.intersection, s.union, s.iou, s.box) == (0, 100, 0.0, False)
    # no_target: a failure on an empty GT is a miss, a predicted box with an empty mask too
    assert score_sample(None, [], empty, None, no_target=True).no_target_hit is False
    assert score_sample(empty, [(1, 1, 2, 2)], empty, None, no_target=True).iou == 0.0
    hit = score_sample(empty, [], empty, None, no_target=True)
    assert (hit.iou, hit.no_target_hit, hit.box) == (1.0, True, None)
    # without the switch, both-empty is skipped (Seg-Zero's script skips it too)
    assert score_sample(empty, [], empty, None).iou is None
    meter = MultiMeter()
    for score in (s, hit):
        meter.add(score)
    assert meter.giou == 0.5 and meter.ciou == 0.0 and meter.box_accuracy == 0.0 and meter.n_acc == 1.0


def test_box_hit():
    gt = (0, 0, 100, 100)
    assert box_hit([(0, 0, 100, 60)], gt)  # IoU 0.6
    assert not box_hit([(0, 0, 100, 50)], gt)  # IoU exactly 0.5 is not a hit
    halves = [(0, 0, 100, 40), (0, 60, 100, 100)]
    assert not box_hit(halves, gt) and box_hit(halves, gt, "any-or-enclosing")
    assert enclosing_box(halves) == (0.0, 0.0, 100.0, 100.0)
    assert not box_hit([], gt, "any-or-enclosing")
    with pytest.raises(ValueError, match="box_metric"):
        box_hit(halves, gt, "union")


coord = st.integers(-50, 900)


@settings(max_examples=500, deadline=None)
@given(st.lists(coord, min_size=4, max_size=4), st.lists(coord, min_size=4, max_size=4))
def test_box_iou_is_seg_zeros(a, b):
    assert eval_box_iou(a, b) == ref.compute_bbox_iou(a, b)


def test_eval_cli_multi_on_the_tiny_torch_models(tiny_models, tmp_path, capsys):
    from segzero_edge.cli import main
    from segzero_edge.synthetic.multi_dataset import write_multi_dataset

    write_multi_dataset(tmp_path / "m", {"test": 2}, size=256, seed=0, progress=False, no_target_rate=0.5)
    data, out = tmp_path / "m" / "test.parquet", tmp_path / "r.jsonl"
    args = ["eval", "--reasoner", str(tiny_models.reasoner), "--segmenter", str(tiny_models.segmenter),
            "--data", str(data), "--max-new-tokens", "6", "--out", str(out)]  # fmt: skip
    assert main([*args, "--no-target"]) == 2  # multi-only switches need the multi format
    assert "need --answer-format multi" in capsys.readouterr().err
    code = main([*args, "--answer-format", "multi", "--no-target", "--box-metric", "any-or-enclosing"])
    printed = capsys.readouterr().out
    assert code == 0 and "gIoU=" in printed and "n=" in printed
    header, *records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2
    recorded = {k: header["provenance"][k] for k in ("answer_format", "no_target", "box_metric")}
    assert recorded == {"answer_format": "multi", "no_target": True, "box_metric": "any-or-enclosing"}
    # the same file under other switches is refused before any model loads
    assert main([*args, "--answer-format", "multi"]) == 2
    assert "no_target True -> False" in capsys.readouterr().err
    # a random tiny model rarely closes its tags in 6 tokens: every row is scored, failures included
    assert all((r["iou"] is not None) for r in records)


def test_eval_cli_refuses_a_format_the_engines_do_not_render(tmp_path, data, capsys):
    from segzero_edge import default_engines
    from segzero_edge.cli import main

    try:
        engines = default_engines()
    except FileNotFoundError:
        pytest.skip("this install ships no engines")
    code = main(["eval", "--engines", str(engines), "--data", str(data), "--answer-format", "multi"])
    assert code == 2 and "render the 'single' prompt" in capsys.readouterr().err
