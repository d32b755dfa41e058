"""`segzero-edge info`: graph I/O read from the protobuf (equal to onnxruntime's), sizes from the
manifest, and the documented peak-memory formula."""

from __future__ import annotations

import json

import pytest

import segzero_edge
from segzero_edge.engine_info import RUNTIME_OVERHEAD, SEGMENTER_FACTOR, describe, estimate, graphs
from segzero_edge.graphs import reasoner_text_io as text_io
from segzero_edge.manifest import read_manifest
from segzero_edge.onnx_refs import graph_io


@pytest.fixture(scope="module")
def engines():
    return segzero_edge.default_engines()


def test_graph_io_matches_onnxruntime(engines):
    ort = pytest.importorskip("onnxruntime")
    for graph in ("reasoner/vision.onnx", "reasoner/embed.onnx", "reasoner/decoder.onnx",
                  "segmenter/encoder.onnx", "segmenter/decoder.onnx"):
        session = ort.InferenceSession(str(engines / graph), providers=["CPUExecutionProvider"])
        inputs, outputs = graph_io(engines / graph)
        for ours, theirs in ((inputs, session.get_inputs()), (outputs, session.get_outputs())):
            assert [v.name for v in ours] == [v.name for v in theirs]
            assert [f"tensor({v.dtype.replace('float32', 'float')})" for v in ours] == [v.type for v in theirs]
            assert [list(v.shape) for v in ours] == [list(v.shape) for v in theirs]
    decoder_inputs = {v.name for v in graph_io(engines / "reasoner/decoder.onnx")[0]}
    assert decoder_inputs == set(text_io.decoder_input_names(4))


def test_memory_estimate_follows_its_formula(engines):
    manifest = read_manifest(engines)
    infos = graphs(manifest)
    files = manifest.data["files"]
    assert {g.path: g.bytes for g in infos} == {p: files[p]["bytes"] for p in files if p.endswith(".onnx")}
    assert {g.path: g.precision for g in infos}["reasoner/decoder.onnx"] == "int8"
    est = estimate(manifest, infos, 2048)
    # the shipped reasoner: 4 layers, 2 kv heads of 64, 4 heads, hidden 256, fp32 cache
    assert est.kv == 2 * 4 * 2 * 64 * 2048 * 4
    assert est.prefill == 4 * 2048**2 * 4 + 2048 * 256 * 4 * 20
    pre = manifest.components["reasoner"]["preprocess"]
    patches = min(840**2, pre["max_pixels"]) // 14**2  # Qwen resizes to at most max_pixels
    assert est.vision == 16 * patches**2 * 4 + patches * 1280 * 4 * 20
    assert est.segmenter == SEGMENTER_FACTOR * 4 * (8 * 256**2 + 16 * 128**2 + 64 * 64**2)
    assert est.peak == RUNTIME_OVERHEAD + est.weights + est.segmenter
    assert estimate(manifest, infos, 4096).kv == 2 * est.kv
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        estimate(manifest, infos, 0)


def test_info_cli(engines, capsys):
    from segzero_edge.cli import main

    assert main(["info", "--engines", str(engines), "--max-length", "1024", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(json.dumps(describe(engines, 1024)))
    assert data["memory_estimate"]["max_length"] == 1024
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "reasoner/decoder.onnx: int8" in out and "estimated peak memory at 2048 tokens" in out
    assert main(["info", "--max-length", "0"]) == 2
