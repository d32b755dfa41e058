"""An engine directory cannot point outside itself: every path in the manifest (and every
external-data location inside a graph) is relative, normalised, resolves inside the directory
(symlinks included), and is listed and hashed; a malformed manifest is one `EngineError` line
naming the key. Each test here failed on the code before issue 13."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from segzero_edge.manifest import EngineError, read_manifest, write_manifest

onnx = pytest.importorskip("onnx")


def edit(root: Path, change) -> None:
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def load(root: Path):
    from segzero_edge.runtime import ReasoningSegmenter

    return ReasoningSegmenter.from_dir(root)


@pytest.fixture
def no_ort(monkeypatch):
    """Fail the test if onnxruntime is asked to open anything: the refusal must come first."""
    import onnxruntime

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"onnxruntime was asked to open {path}")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


def test_stub_engine_loads(stub_copy):
    seg = load(stub_copy)
    assert seg.manifest.root == stub_copy


@pytest.mark.parametrize("bad", ["../../outside/decoder.onnx", "{abs}", "./decoder.onnx", "a//decoder.onnx",
                                 "..\\decoder.onnx"])
def test_graph_paths_must_be_relative_and_normalised(stub_copy, tmp_path, no_ort, bad):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(stub_copy / "reasoner" / "decoder.onnx", outside / "decoder.onnx")
    name = bad.format(abs=outside / "decoder.onnx")
    edit(stub_copy, lambda d: d["components"]["reasoner"]["files"].update(decoder=name))
    with pytest.raises(EngineError, match=r"components\.reasoner\.files\.decoder: .*(absolute|normalised|backslash)"):
        load(stub_copy)


def test_a_graph_the_manifest_does_not_list_is_refused(stub_copy, no_ort):
    # a second decoder, never hashed: the component may only name listed files
    shutil.copy(stub_copy / "reasoner" / "decoder.onnx", stub_copy / "reasoner" / "other.onnx")
    edit(stub_copy, lambda d: d["components"]["reasoner"]["files"].update(decoder="other.onnx"))
    with pytest.raises(EngineError, match=r"components\.reasoner\.files\.decoder names reasoner/other\.onnx.*not list"):
        load(stub_copy)


def test_empty_files_verifies_nothing_and_is_refused(stub_copy, no_ort):
    edit(stub_copy, lambda d: d.update(files={}))
    with pytest.raises(EngineError, match=r"files: lists no files"):
        load(stub_copy)


def test_listed_name_that_escapes_is_refused(stub_copy, tmp_path, no_ort):
    (tmp_path / "secret.onnx").write_bytes(b"x")
    edit(stub_copy, lambda d: d["files"].update({"../secret.onnx": {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(EngineError, match=r"files\['\.\./secret\.onnx'\]"):
        load(stub_copy)


def test_symlink_pointing_outside_is_refused(stub_copy, tmp_path, no_ort):
    outside = tmp_path / "elsewhere.onnx"
    target = stub_copy / "segmenter" / "decoder.onnx"
    shutil.move(target, outside)
    os.symlink(outside, target)  # same bytes, same hash: only the location is wrong
    with pytest.raises(EngineError, match=r"segmenter/decoder\.onnx resolves to .*outside the engine directory"):
        load(stub_copy)


def test_symlink_inside_the_directory_is_fine(stub_copy):
    target = stub_copy / "segmenter" / "decoder.onnx"
    (stub_copy / "store").mkdir()
    shutil.move(target, stub_copy / "store" / "decoder.onnx")
    os.symlink("../store/decoder.onnx", target)
    load(stub_copy)


def test_fifo_is_refused(stub_copy, no_ort):
    target = stub_copy / "segmenter" / "decoder.onnx"
    target.unlink()
    os.mkfifo(target)  # reading it would block forever
    with pytest.raises(EngineError, match="not a regular file"):
        load(stub_copy)


def test_manifest_symlinked_from_outside_is_refused(stub_copy, tmp_path):
    shutil.move(stub_copy / "manifest.json", tmp_path / "manifest.json")
    os.symlink(tmp_path / "manifest.json", stub_copy / "manifest.json")
    with pytest.raises(EngineError, match="outside the engine directory"):
        read_manifest(stub_copy)


# -- external data -------------------------------------------------------------------------------


def external_decoder(root: Path, location: str | None, *, extra: dict[str, str] | None = None) -> None:
    """Re-save reasoner/decoder.onnx with its logits row as external data at `location`
    (written as reasoner/decoder.onnx.data, then the reference rewritten), and rehash."""
    from onnx import external_data_helper

    components = json.loads((root / "manifest.json").read_text())["components"]
    path = root / "reasoner" / "decoder.onnx"
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="decoder.onnx.data", size_threshold=1024)
    model = onnx.load(str(path), load_external_data=False)
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL:
            del tensor.external_data[:]
            entries = {"location": location, **(extra or {})} if location is not None else dict(extra or {})
            for key, value in entries.items():
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
    path.write_bytes(model.SerializeToString())  # as is: onnx.save would refuse the bad locations
    (root / "manifest.json").unlink()
    write_manifest(root, sources={"reasoner": "stub", "segmenter": "stub"}, components=components)


@pytest.fixture
def ext_copy(stub_copy):
    return stub_copy


def test_external_data_inside_and_listed_loads(ext_copy):
    external_decoder(ext_copy, "decoder.onnx.data")
    seg = load(ext_copy)
    assert "reasoner/decoder.onnx.data" in seg.manifest.data["files"]


@pytest.mark.parametrize(
    "location,match",
    [
        ("../../outside.data", "not normalised"),
        ("{abs}", "absolute"),
        ("*/_ORT_MEM_ADDR_/*", "not listed"),  # onnxruntime reads raw memory for this one
        ("unlisted.data", "not listed"),
        (None, "no location"),
    ],
)
def test_external_data_is_checked_before_onnxruntime_opens_anything(ext_copy, tmp_path, location, match, request):
    outside = tmp_path / "outside.data"
    external_decoder(ext_copy, "decoder.onnx.data")
    shutil.copy(ext_copy / "reasoner" / "decoder.onnx.data", outside)
    if location == "unlisted.data":
        # a file inside the directory that the manifest does not list (added after export)
        external_decoder(ext_copy, location)
        shutil.copy(outside, ext_copy / "reasoner" / "unlisted.data")
    else:
        external_decoder(ext_copy, location.format(abs=outside) if location else None)
    request.getfixturevalue("no_ort")
    with pytest.raises(EngineError, match=rf"external data .* refused: .*{match}"):
        load(ext_copy)


def test_external_data_through_a_symlink_outside_is_refused(ext_copy, tmp_path, no_ort):
    external_decoder(ext_copy, "decoder.onnx.data")
    data = ext_copy / "reasoner" / "decoder.onnx.data"
    shutil.move(data, tmp_path / "w.data")
    os.symlink(tmp_path / "w.data", data)
    with pytest.raises(EngineError, match="outside the engine directory"):
        load(ext_copy)


def test_external_data_range_past_the_file_is_refused(ext_copy, no_ort):
    external_decoder(ext_copy, "decoder.onnx.data", extra={"offset": "0", "length": str(10**9)})
    with pytest.raises(EngineError, match=r"reads bytes 0\.\.1000000000"):
        load(ext_copy)


def test_external_refs_match_onnx_own_reading(ext_copy):
    from onnx import external_data_helper

    from segzero_edge.onnx_refs import external_refs

    external_decoder(ext_copy, "decoder.onnx.data")
    path = ext_copy / "reasoner" / "decoder.onnx"
    ours = {(r.tensor, r.location) for r in external_refs(path)}
    model = onnx.load(str(path), load_external_data=False)
    theirs = {(t.name, {e.key: e.value for e in t.external_data}["location"])
              for t in external_data_helper._get_all_tensors(model) if external_data_helper.uses_external_data(t)}
    assert ours == theirs and ours


def test_external_data_in_a_subgraph_attribute_is_found(tmp_path):
    """A tensor inside an If branch's Constant node: the walk reaches nested graphs."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.onnx_refs import external_refs

    value = numpy_helper.from_array(np.zeros(4, np.float32), "c")
    value.data_location = TensorProto.EXTERNAL
    entry = value.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    branch = helper.make_graph([helper.make_node("Constant", [], ["y"], value=value)], "b", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    path = tmp_path / "if.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())  # onnx.save would refuse the '..'

    assert [r.location for r in external_refs(path)] == ["../../etc/passwd"] * 2


# -- malformed manifests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,key",
    [
        (lambda d: d["components"]["reasoner"]["dims"].pop("num_layers"), r"components\.reasoner\.dims\.num_layers: is missing"),
        (lambda d: d["components"]["reasoner"]["dims"].update(num_layers="4"), r"components\.reasoner\.dims\.num_layers: must be an integer"),
        (lambda d: d["components"]["reasoner"]["dims"].update(kv_heads=10**12), r"components\.reasoner\.dims\.kv_heads: must be an integer in \[1, 1024\]"),
        (lambda d: d["components"]["reasoner"].update(prompt=None), r"components\.reasoner\.prompt: must be a JSON object"),
        (lambda d: d["components"]["reasoner"]["special_tokens"].update(eos="x"), r"components\.reasoner\.special_tokens\.eos: must be an integer"),
        (lambda d: d["components"]["segmenter"].update(image_mean=[0.5, 0.5]), r"components\.segmenter\.image_mean: must be a list of 3"),
        (lambda d: d["components"]["segmenter"].update(mask_threshold=float("nan")), r"components\.segmenter\.mask_threshold: must be a finite number"),
        (lambda d: d["components"]["segmenter"].pop("files"), r"components\.segmenter\.files: is missing"),
        (lambda d: d["components"].update(segmenter=[]), r"components\.segmenter: must be a JSON object"),
        (lambda d: next(iter(d["files"].values())).update(bytes=-1), r"files\..*\.bytes: must be an integer"),
        (lambda d: next(iter(d["files"].values())).pop("sha256"), r"files\..*\.sha256: is missing"),
        (lambda d: d.update(files=[]), r"files: must be a JSON object"),
        (lambda d: d.update(components="x"), r"components: must be a JSON object"),
    ],
)
def test_malformed_manifest_is_one_engine_error_line_naming_the_key(stub_copy, change, key):
    edit(stub_copy, change)
    with pytest.raises(EngineError, match=key) as info:
        load(stub_copy)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"format_version": 1' + " " * (9 << 20) + "}", "1" * 5000])
def test_hostile_json_is_an_engine_error(stub_copy, text):
    (stub_copy / "manifest.json").write_text(text)
    with pytest.raises(EngineError):
        read_manifest(stub_copy)


def test_graphs_the_manifest_does_not_describe_are_an_engine_error(stub_copy):
    # listed and hashed, but the wrong graph for the role: a load error becomes one EngineError line
    edit(stub_copy, lambda d: d["components"]["segmenter"]["files"].update(encoder="decoder.onnx", decoder="encoder.onnx"))
    with pytest.raises(EngineError, match="the segmenter does not load from its verified files"):
        load(stub_copy)


def test_dims_that_disagree_with_the_graph_are_an_engine_error(stub_copy):
    edit(stub_copy, lambda d: d["components"]["reasoner"]["dims"].update(head_dim=8))
    with pytest.raises(EngineError, match="head_dim=8"):
        load(stub_copy)
