"""Results people can use: COCO RLE masks (pycocotools or the numpy fallback, same strings),
`Result.to_dict`/`from_dict` round trips, `Result.save`, the overlay outline, and the CLI's
`--json` carrying the mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import BoxSegmenter, ScriptedReasoner, answer_text
from PIL import Image

from segzero_edge import rle
from segzero_edge.overlay import mask_outline, render_overlay
from segzero_edge.pipeline import ReasoningPipeline, Result


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((5, 7), bool)
    yield np.ones((5, 7), bool)
    yield np.zeros((0, 4), bool)
    first = np.zeros((3, 3), bool)
    first[0, 0] = True  # starts with a foreground pixel: counts begin with a zero-length run
    yield first
    blob = np.zeros((64, 48), bool)
    blob[10:40, 5:30] = True
    blob[20:25, 12:18] = False
    yield blob
    for p in (0.02, 0.5, 0.97):
        yield rng.random((37, 53)) < p
    long_runs = np.zeros((300, 200), bool)  # runs > 2^15 need several 5-bit groups
    long_runs[:, 150:] = True
    yield long_runs


#: pycocotools 2.0 `mask.encode` of the 3x3 mask with only (0, 0) set (runs 0, 1, 8).
KNOWN = {"first": "018", "first_runs": [0, 1, 8]}


@pytest.mark.parametrize("mask", list(_masks()), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_rle_round_trips_with_either_implementation(mask):
    fallback = rle.encode_numpy(mask)
    assert fallback["size"] == list(mask.shape)
    assert json.loads(json.dumps(fallback)) == fallback
    assert np.array_equal(rle.decode_numpy(fallback), mask)
    assert np.array_equal(rle.decode(rle.encode(mask)), mask)


@pytest.mark.parametrize("mask", list(_masks()), ids=lambda m: f"{m.shape}-{int(m.sum())}")
def test_fallback_writes_pycocotools_strings(mask):
    coco = pytest.importorskip("pycocotools.mask")
    if mask.size == 0:
        pytest.skip("pycocotools cannot encode an empty array")
    expected = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert rle.encode_numpy(mask)["counts"] == expected["counts"].decode()
    assert np.array_equal(rle.decode_numpy({"size": list(mask.shape), "counts": expected["counts"].decode()}),
                          coco.decode(expected).astype(bool))


def test_fallback_known_string():
    first = np.zeros((3, 3), bool)
    first[0, 0] = True
    assert rle._runs_from_string(rle.encode_numpy(first)["counts"]) == KNOWN["first_runs"]
    assert rle.encode_numpy(first)["counts"] == KNOWN["first"]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"size": [2, 2]}, "dict with 'size' and 'counts'"),
        ({"size": [2], "counts": "4"}, r"size must be \[height, width\]"),
        ({"size": [2, 2], "counts": "3"}, "cover 3 pixels; size 2x2 has 4"),
        ({"size": [2, 2], "counts": "0\x7f"}, "outside the COCO alphabet"),
        ({"size": [2, 2], "counts": "P"}, "ends inside a run"),
        ({"size": [2, 2], "counts": [1, 3]}, "compressed string"),
    ],
)
def test_malformed_rle_says_why(bad, match):
    with pytest.raises(rle.RLEError, match=match):
        rle.decode(bad)
    if isinstance(bad.get("counts"), str):
        with pytest.raises(rle.RLEError, match=match):
            rle.decode_numpy(bad)


def _result() -> Result:
    pipe = ReasoningPipeline(ScriptedReasoner(answer_text([84, 84, 420, 420], [200, 200], [300, 300])), BoxSegmenter())
    return pipe.segment(np.full((100, 120, 3), 90, np.uint8), "the box")


def test_result_to_dict_round_trips_through_json():
    r = _result()
    assert r.ok and r.mask.any()
    data = json.loads(json.dumps(r.to_dict()))
    assert data["mask_area"] == int(r.mask.sum())
    assert data["timings"]["tokens"] == r.timings["tokens"] and isinstance(data["timings"]["tokens"], int)
    back = Result.from_dict(data)
    assert np.array_equal(back.mask, r.mask)
    assert (back.ok, back.query, back.bbox, back.points, back.score, back.thinking, back.answer_text) == (
        r.ok, r.query, r.bbox, r.points, r.score, r.thinking, r.answer_text
    )
    assert back.timings == r.timings and back.warnings == r.warnings
    failed = Result(ok=False, query="q", error="unparseable answer: x")
    assert Result.from_dict(json.loads(json.dumps(failed.to_dict()))) == failed


def test_result_save_writes_the_overlay(tmp_path):
    r = _result()
    path = r.save(tmp_path / "out.png")
    saved = np.asarray(Image.open(path).convert("RGB"))
    expected = np.asarray(render_overlay(r.image, r))
    assert np.array_equal(saved, expected)
    assert saved.shape[1] == 120 and saved.shape[0] > 100  # the caption strip below the image
    bare = Result.from_dict(r.to_dict())
    with pytest.raises(ValueError, match="holds no image"):
        bare.save(tmp_path / "x.png")
    bare.save(tmp_path / "y.png", image=r.image, caption=False)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "y.png").convert("RGB")),
                          np.asarray(render_overlay(r.image, r, caption=False)))


def test_overlay_outlines_a_mask_in_its_tint_colour():
    blue = np.zeros((40, 40, 3), np.uint8)
    blue[:] = (30, 144, 255)  # the tint colour itself: a tint alone would leave no trace
    mask = np.zeros((40, 40), bool)
    mask[10:30, 12:28] = True
    r = Result(ok=True, query="the blue thing", mask=mask)
    drawn = np.asarray(render_overlay(blue, r, caption=False))
    inner, outer = mask_outline(mask)
    assert inner.sum() == 2 * (20 + 16) - 4 and outer.sum() == 2 * (20 + 16)  # 4-connected rings
    assert (drawn[inner] == 255).all() and (drawn[outer] == 0).all()
    assert (drawn[~(inner | outer)] == (30, 144, 255)).all()  # everything else unchanged


def test_cli_json_carries_the_mask_rle(tmp_path, monkeypatch):
    from segzero_edge.cli import main
    from segzero_edge.cli import segment as segment_cli

    image = tmp_path / "img.png"
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(image)
    pipe = ReasoningPipeline(ScriptedReasoner(answer_text([84, 84, 420, 420], [200, 200], [300, 300])), BoxSegmenter())
    monkeypatch.setattr(segment_cli, "load_segmenter", lambda args: pipe)
    out = tmp_path / "r.json"
    assert main(["segment", "--image", str(image), "--query", "the box", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    mask = rle.decode(data["mask_rle"])
    assert mask.shape == (100, 120) and int(mask.sum()) == data["mask_area"] > 0
