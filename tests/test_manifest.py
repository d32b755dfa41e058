from __future__ import annotations

import json

import pytest

from segzero_edge import __version__
from segzero_edge.manifest import FORMAT_VERSION, EngineError, read_manifest, write_manifest


@pytest.fixture
def engine_dir(tmp_path):
    """A segmenter-only engine directory (the stub engine's segmenter graphs)."""
    pytest.importorskip("onnx")
    from segzero_edge.graphs.segmenter_io import default_meta
    from segzero_edge.testing.stub_engine import write_stub_engine

    stub = write_stub_engine(tmp_path / "stub")
    root = tmp_path / "engines"
    (root / "segmenter").mkdir(parents=True)
    for name in ("encoder.onnx", "decoder.onnx"):
        (root / "segmenter" / name).write_bytes((stub / "segmenter" / name).read_bytes())
    write_manifest(root, sources={"segmenter": "tiny"}, components={"segmenter": {**default_meta(), "precision": {"encoder": "fp32"}}})
    return root


def test_round_trip(engine_dir):
    m = read_manifest(engine_dir)
    assert m.format_version == FORMAT_VERSION and m.data["package_version"] == __version__
    assert set(m.data["files"]) == {"segmenter/encoder.onnx", "segmenter/decoder.onnx"}
    assert m.component("segmenter")["precision"] == {"encoder": "fp32"}
    assert m.path("segmenter/encoder.onnx") == (engine_dir / "segmenter" / "encoder.onnx").resolve()


def test_tampered_file_is_refused(engine_dir):
    path = engine_dir / "segmenter" / "decoder.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"altered: .*decoder\.onnx"):
        read_manifest(engine_dir)


def test_missing_file_is_refused(engine_dir):
    (engine_dir / "segmenter" / "encoder.onnx").unlink()
    with pytest.raises(EngineError, match=r"missing: .*encoder\.onnx"):
        read_manifest(engine_dir)


def test_unknown_version_is_refused(engine_dir):
    path = engine_dir / "manifest.json"
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(EngineError, match="format version"):
        read_manifest(engine_dir)


@pytest.mark.parametrize("content,match", [(None, "missing"), ("{not json", "not valid JSON"), ("[]", "lacks")])
def test_bad_manifest(engine_dir, content, match):
    path = engine_dir / "manifest.json"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(EngineError, match=match):
        read_manifest(engine_dir)


def test_unknown_component_and_unlisted_file(engine_dir):
    m = read_manifest(engine_dir)
    with pytest.raises(EngineError, match="no 'reasoner' component"):
        m.component("reasoner")
    with pytest.raises(EngineError, match="not listed"):
        m.path("../secrets")


def test_missing_dir(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        read_manifest(tmp_path / "none")
