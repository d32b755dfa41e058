"""The shipped engines through the torch-free runtime, as a robot install runs them.

Runs in both lanes: `make test`, and `make test-runtime` (a fresh venv with only
`pip install ".[cpu]"` and pytest, no torch). It checks behaviour, not quality
(test_embedded.py holds the shipped engines to their measured figures): the engines load with
every file verified, an altered file is refused, an image is segmented with the documented
result shapes, many queries share one encoding, and torch never loads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from protocols import assert_segmenter

import segzero_edge
from segzero_edge.manifest import EngineError, read_manifest
from segzero_edge.pipeline import Result

pytest.importorskip("onnxruntime")  # the [cpu] extra

#: Set by `make test-runtime`, whose venv must not hold torch at all.
RUNTIME_LANE = os.environ.get("SEGZERO_EDGE_RUNTIME_LANE") == "1"
HEAVY = ("torch", "transformers", "trl", "peft", "bitsandbytes")
MAX_NEW_TOKENS = 256  # the shipped reasoner answers in ~140 tokens; a cap keeps a bad answer short
REASONER_TIMINGS = ("reasoner_vision_ms", "reasoner_prefill_ms", "reasoner_decode_ms", "tokens", "total_ms")
SEGMENTER_TIMINGS = ("segmenter_encode_ms", "segmenter_decode_ms")  # only when the answer parsed


@pytest.fixture(scope="module")
def engines() -> Path:
    try:
        return segzero_edge.default_engines()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def example(engines) -> tuple[np.ndarray, str]:
    """The first shipped example scene and its query."""
    root = Path(segzero_edge.__file__).parent / "assets" / "examples"
    first = json.loads((root / "examples.json").read_text())["examples"][0]
    return np.asarray(Image.open(root / first["image"]).convert("RGB")), first["query"]


@pytest.fixture(scope="module")
def seg(engines):
    from segzero_edge.runtime import ReasoningSegmenter

    return ReasoningSegmenter.from_dir(provider="cpu", max_new_tokens=MAX_NEW_TOKENS)


def test_the_lane_has_no_torch_installed():
    if not RUNTIME_LANE:
        pytest.skip("checks the torch-free lane (make test-runtime)")
    assert [m for m in HEAVY if importlib.util.find_spec(m) is not None] == []


def test_shipped_engines_load_with_every_file_verified(engines):
    manifest = read_manifest(engines)  # sha256 of every listed file, format version
    assert {"reasoner", "segmenter"} <= set(manifest.components)
    files = manifest.data["files"]
    for name in ("reasoner/vision.onnx", "reasoner/embed.onnx", "reasoner/decoder.onnx", "reasoner/tokenizer.json",
                 "segmenter/encoder.onnx", "segmenter/decoder.onnx"):
        assert name in files and (engines / name).stat().st_size == files[name]["bytes"] > 0


def test_an_altered_engine_file_is_refused(engines, tmp_path):
    from segzero_edge.runtime import ReasoningSegmenter

    copy = tmp_path / "engines"
    shutil.copytree(engines, copy)
    graph = copy / "reasoner" / "decoder.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="altered"):
        ReasoningSegmenter.from_dir(copy)


def test_segment_returns_the_documented_result(seg, example):
    image, query = example
    height, width = image.shape[:2]
    r = seg.segment(image, query)
    assert isinstance(r, Result) and r.query == query
    expected = REASONER_TIMINGS + (SEGMENTER_TIMINGS if r.ok else ())
    assert set(expected) <= set(r.timings) and all(r.timings[k] >= 0 for k in expected)
    assert 1 <= r.timings["tokens"] <= MAX_NEW_TOKENS
    assert isinstance(r.answer_text, str) and r.answer_text
    if r.ok:
        assert r.error is None
        assert r.mask.shape == (height, width) and r.mask.dtype == np.bool_
        x1, y1, x2, y2 = r.bbox
        assert 0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height
        assert all(0 <= x < width and 0 <= y < height for x, y in r.points)
    else:  # an unparseable answer is reported, never raised
        assert r.error and r.mask is None


def test_segment_many_encodes_the_image_once_and_answers_as_segment(seg, example):
    image, query = example
    calls = {"reasoner": 0, "segmenter": 0}
    reasoner_encode, segmenter_encode = seg.reasoner.encode_image, seg.segmenter.encode

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapped

    seg.reasoner.encode_image = count("reasoner", reasoner_encode)
    seg.segmenter.encode = count("segmenter", segmenter_encode)
    try:
        results = seg.segment_many(image, [query, "the largest shape"])
    finally:
        del seg.reasoner.encode_image, seg.segmenter.encode  # back to the class methods
    assert len(results) == 2 and calls["reasoner"] == 1
    assert calls["segmenter"] == (1 if any(r.ok for r in results) else 0)  # encoded once, when first needed
    assert results[0].answer_text == seg.segment(image, query).answer_text  # greedy: the same answer


def test_shipped_segmenter_gives_masks_at_the_image_size(seg, example):
    image, _ = example
    height, width = image.shape[:2]
    box = [width // 4, height // 4, 3 * width // 4, 3 * height // 4]
    masks, scores = assert_segmenter(seg.segmenter, image, box, [[width // 2, height // 2], [width // 2 + 5, height // 2]])
    assert masks.shape[0] == scores.shape[0] == 3  # SAM2's multimask output


def test_loading_and_segmenting_never_imports_torch(engines, example, tmp_path):
    image_path = Path(segzero_edge.__file__).parent / "assets" / "examples" / "scene_1.png"
    code = (
        "import sys\n"
        "from segzero_edge.runtime import ReasoningSegmenter\n"
        f"seg = ReasoningSegmenter.from_dir(max_new_tokens={MAX_NEW_TOKENS})\n"
        f"r = seg.segment({str(image_path)!r}, {example[1]!r})\n"
        "assert r.timings['tokens'] >= 1\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    # cwd: a folder without a segzero_edge/ checkout, so the installed package is what runs
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split() == []
