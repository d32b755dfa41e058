"""Evaluation on small on-disk datasets in each layout, checked against hand computation."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes import BoxSegmenter, ScriptedReasoner, answer_text
from PIL import Image

from segzero_edge.evaldata import DataError, lisa_masks, read_eval_set
from segzero_edge.evaluate import evaluate
from segzero_edge.pipeline import ReasoningPipeline

SIZE = 840
# (query, GT box as inclusive pixel ranges, scripted answer)
ROWS = [
    ("the square", (100, 100, 199, 199), answer_text([100, 100, 199, 199], [150, 150], [160, 160])),
    ("the lost thing", (300, 300, 399, 349), "<think>cannot tell</think><answer>none</answer>"),
    ("the strip", (0, 0, 99, 49), answer_text([50, 0, 149, 49], [60, 10], [70, 20])),
]
# BoxSegmenter keeps the box shrunk by 2 px: sample 1 I=96*96, U=100*100; sample 2 fails
# (I=0, U=100*50); sample 3 pred x 52..147, y 2..47 (96x46) vs GT 100x50 → I=48*46.
HAND = [(9216, 10000), (0, 5000), (2208, 5000 + 4416 - 2208)]
HAND_GIOU = sum(i / u for i, u in HAND) / 3
HAND_CIOU = sum(i for i, _ in HAND) / sum(u for _, u in HAND)


def _gt(box) -> np.ndarray:
    x1, y1, x2, y2 = box
    m = np.zeros((SIZE, SIZE), bool)
    m[y1 : y2 + 1, x1 : x2 + 1] = True
    return m


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _pipeline() -> tuple[ReasoningPipeline, ScriptedReasoner]:
    reasoner = ScriptedReasoner({q: a for q, _, a in ROWS})
    return ReasoningPipeline(reasoner, BoxSegmenter()), reasoner


@pytest.fixture
def hf_parquet(tmp_path):
    image = np.full((SIZE, SIZE, 3), 128, np.uint8)
    table = pa.table(
        {
            "image": [{"bytes": _png(image), "path": None} for _ in ROWS],
            "text": [q for q, _, _ in ROWS],
            "mask": [_gt(b).astype(np.uint8).tolist() for _, b, _ in ROWS],  # nested lists, as in ReasonSeg-HF
            "image_id": [f"img{i}" for i in range(len(ROWS))],
            "ann_id": [str(i) for i in range(len(ROWS))],
            "img_height": [SIZE] * len(ROWS),
            "img_width": [SIZE] * len(ROWS),
        }
    )
    path = tmp_path / "test.parquet"
    pq.write_table(table, path)
    return path


def test_hf_layout_matches_hand_computation(hf_parquet, tmp_path):
    pipe, _ = _pipeline()
    summary = evaluate(pipe, read_eval_set(hf_parquet), tmp_path / "r.jsonl", progress=False)
    assert summary.count == 3 and summary.failed == 1
    assert summary.giou == pytest.approx(HAND_GIOU) and summary.ciou == pytest.approx(HAND_CIOU)
    assert summary.line() == f"gIoU={HAND_GIOU:.4f} cIoU={HAND_CIOU:.4f} n=3"
    header, *records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    # without a caller's provenance the header still records how the samples were scored
    assert header["segzero_eval"] == 1
    recorded = {k: v for k, v in header["provenance"].items() if v is not None}
    assert recorded == {"answer_format": "single"}
    assert [(r["intersection"], r["union"]) for r in records] == HAND
    assert records[0]["think"] == "it is there" and records[1]["ok"] is False
    assert {"query", "answer", "timings"} <= set(records[0])


def test_mask_as_image_feature(tmp_path):
    table = pa.table(
        {
            "image": [{"bytes": _png(np.zeros((SIZE, SIZE, 3), np.uint8)), "path": None}],
            "text": [ROWS[0][0]],
            "mask": [{"bytes": _png((_gt(ROWS[0][1]) * 255).astype(np.uint8)), "path": None}],
        }
    )
    pq.write_table(table, tmp_path / "m.parquet")
    pipe, _ = _pipeline()
    assert evaluate(pipe, read_eval_set(tmp_path / "m.parquet"), progress=False).giou == pytest.approx(0.9216)


def test_saved_dataset_dir(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {
            "image": [Image.new("RGB", (SIZE, SIZE)) for _ in ROWS],
            "text": [q for q, _, _ in ROWS],
            "mask": [_gt(b).tolist() for _, b, _ in ROWS],
            "image_id": list(range(3)),
            "ann_id": list(range(3)),
        },
        features=datasets.Features(
            {
                "image": datasets.Image(),
                "text": datasets.Value("string"),
                "mask": datasets.Sequence(datasets.Sequence(datasets.Value("bool"))),
                "image_id": datasets.Value("int64"),
                "ann_id": datasets.Value("int64"),
            }
        ),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    pipe, _ = _pipeline()
    summary = evaluate(pipe, read_eval_set(tmp_path / "saved"), progress=False)
    assert summary.giou == pytest.approx(HAND_GIOU) and summary.ciou == pytest.approx(HAND_CIOU)


def _write_lisa(root):
    root.mkdir()
    for i, (query, (x1, y1, x2, y2), _) in enumerate(ROWS):
        Image.new("RGB", (SIZE, SIZE), (90, 90, 90)).save(root / f"s{i}.jpg")
        shapes = [{"label": "target", "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]], "shape_type": "polygon"}]
        shapes.append({"label": "flag", "points": [[700, 700], [800, 700], [800, 800]], "shape_type": "polygon"})
        (root / f"s{i}.json").write_text(json.dumps({"text": [query, "another phrasing"], "is_sentence": True, "shapes": shapes}))


def test_lisa_layout_matches_hand_computation(tmp_path):
    _write_lisa(tmp_path / "lisa")
    pipe, _ = _pipeline()
    summary = evaluate(pipe, read_eval_set(tmp_path / "lisa"), progress=False)
    assert summary.giou == pytest.approx(HAND_GIOU) and summary.ciou == pytest.approx(HAND_CIOU)


def test_lisa_ignore_semantics():
    ann = {
        "shapes": [
            {"label": "target", "points": [[0, 0], [9, 0], [9, 9], [0, 9]]},
            {"label": "ignore", "points": [[10, 0], [19, 0], [19, 9], [10, 9]]},
            {"label": "flag", "points": [[0, 20], [9, 20], [9, 29], [0, 29]]},
        ]
    }
    seg_mask, none = lisa_masks(ann, 40, 40, "segzero")
    assert none is None and seg_mask.sum() == 200 and not seg_mask[25, 5]  # ignore counts, flag dropped
    target, ignore = lisa_masks(ann, 40, 40, "lisa")
    assert target.sum() == 100 and ignore.sum() == 100 and not (target & ignore).any()


def test_resume_skips_done_samples_and_survives_a_torn_line(hf_parquet, tmp_path):
    out = tmp_path / "r.jsonl"
    pipe, reasoner = _pipeline()
    first = evaluate(pipe, read_eval_set(hf_parquet, limit=2), out, progress=False)
    assert first.count == 2 and reasoner.generate_calls == 2
    with open(out, "a") as handle:
        handle.write('{"id": "img2:2", "inters')  # a write cut off by a crash
    pipe2, reasoner2 = _pipeline()
    summary = evaluate(pipe2, read_eval_set(hf_parquet), out, progress=False)
    assert reasoner2.generate_calls == 1 and summary.resumed == 2
    assert summary.giou == pytest.approx(HAND_GIOU) and summary.ciou == pytest.approx(HAND_CIOU)
    assert len(out.read_text().splitlines()) == 1 + 3  # the header, then one line per sample


def test_bad_paths_say_why(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list(read_eval_set(tmp_path / "nope.parquet"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="parquet"):
        list(read_eval_set(tmp_path / "x.txt"))
    pq.write_table(pa.table({"image": [b"x"], "text": ["q"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="lacks columns"):
        list(read_eval_set(tmp_path / "bad.parquet"))


def test_headers_written_before_the_answer_format_resume_as_single(hf_parquet, tmp_path):
    """A results file from before the provenance held the answer format resumes a single-format
    run unchanged, and is refused by a multi one."""
    from segzero_edge.eval_results import HEADER_KEY, HEADER_VERSION, Provenance, ResultsMismatch

    old = {"engines_sha256": None, "reasoner": "r", "segmenter": "s", "data_sha256": "d", "data_format": "hf",
           "limit": None, "ignore_mode": "segzero", "max_new_tokens": None}  # fmt: skip
    assert Provenance.from_dict(old) == Provenance(**old, answer_format="single")
    assert Provenance.from_dict({**old, "unknown": 1}) is None
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({HEADER_KEY: HEADER_VERSION, "provenance": old}) + "\n")
    summary = evaluate(_pipeline()[0], read_eval_set(hf_parquet), out, progress=False, provenance=Provenance(**old))
    assert summary.count == 3 and summary.resumed == 0
    multi = ReasoningPipeline(ScriptedReasoner(""), BoxSegmenter(), "multi")
    with pytest.raises(ResultsMismatch, match="answer_format 'single' -> 'multi'"):
        evaluate(multi, read_eval_set(hf_parquet), out, progress=False, provenance=Provenance(**old))
