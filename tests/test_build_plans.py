"""`segzero-edge build-plans` without TensorRT: the manifest/atomic-write/cleanup logic with a
fake plan builder, the runtime's refusal of plans built for another TensorRT or GPU, `--help`,
and the one-line error where tensorrt is missing. The real builder is untested here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from segzero_edge.manifest import EngineError, check_plans_match, read_manifest


def fake_builder(calls: list | None = None, version: str = "10.3.0", gpu: str = "Orin", fail: bool = False):
    def build(root, components, *, plan_dir, fp16, workspace_gib, device_id):
        if calls is not None:
            calls.append({"fp16": fp16, "workspace_gib": workspace_gib, "device_id": device_id})
        (plan_dir / "segmenter_encoder.plan").write_bytes(b"encoder plan " + version.encode())
        if fail:
            raise RuntimeError("TensorRT failed to build decoder.onnx")
        (plan_dir / "segmenter_decoder.plan").write_bytes(b"decoder plan " + gpu.encode())
        return {"tensorrt": version, "gpu": gpu, "segmenter": {
            "encoder": "segmenter_encoder.plan", "decoder": "segmenter_decoder.plan", "fp16": fp16, "max_points": 64}}
    return build


def test_plans_and_manifest_entries_are_written_together(stub_copy):
    from segzero_edge.export.build_plans import build_plans_in_place

    calls: list = []
    trt = build_plans_in_place(stub_copy, fp16=True, workspace_gib=2.0, builder=fake_builder(calls))
    assert calls == [{"fp16": True, "workspace_gib": 2.0, "device_id": 0}]
    manifest = read_manifest(stub_copy)  # every file verified, the plans included
    assert manifest.components["trt"] == trt
    assert (trt["tensorrt"], trt["gpu"], trt["segmenter"]["fp16"]) == ("10.3.0", "Orin", True)
    build = trt["segmenter"]["encoder"].split("/")[0]
    assert build.startswith("build-") and trt["segmenter"]["decoder"] == f"{build}/segmenter_decoder.plan"
    listed = sorted(k for k in manifest.data["files"] if k.startswith("trt/"))
    assert listed == [f"trt/{build}/segmenter_decoder.plan", f"trt/{build}/segmenter_encoder.plan"]
    check_plans_match(trt, "10.3.0", "Orin", where=stub_copy)

    second = build_plans_in_place(stub_copy, builder=fake_builder(version="10.3.1"))  # a rebuild replaces it
    assert [p.name for p in (stub_copy / "trt").iterdir()] == [second["segmenter"]["encoder"].split("/")[0]]
    assert read_manifest(stub_copy).components["trt"]["tensorrt"] == "10.3.1"


def test_a_failed_build_leaves_the_directory_as_it_was(stub_copy):
    from segzero_edge.export.build_plans import build_plans_in_place

    build_plans_in_place(stub_copy, builder=fake_builder())
    before = (stub_copy / "manifest.json").read_bytes()
    tree = sorted(p.relative_to(stub_copy).as_posix() for p in stub_copy.rglob("*"))
    with pytest.raises(RuntimeError, match=r"failed to build decoder\.onnx"):
        build_plans_in_place(stub_copy, builder=fake_builder(fail=True))
    assert (stub_copy / "manifest.json").read_bytes() == before
    assert sorted(p.relative_to(stub_copy).as_posix() for p in stub_copy.rglob("*")) == tree
    read_manifest(stub_copy)
    # a build killed before its commit leaves an unlisted folder: the next build removes it
    (stub_copy / "trt" / "build-killed").mkdir()
    build_plans_in_place(stub_copy, builder=fake_builder())
    assert not (stub_copy / "trt" / "build-killed").exists()


def test_builder_results_are_checked(stub_copy):
    from segzero_edge.export.build_plans import build_plans_in_place

    def no_gpu(root, components, *, plan_dir, **kwargs):
        return {"tensorrt": "10.3.0", "segmenter": {"encoder": "a.plan", "decoder": "b.plan"}}

    with pytest.raises(EngineError, match="returned no 'gpu'"):
        build_plans_in_place(stub_copy, builder=no_gpu)
    assert "trt" not in read_manifest(stub_copy).components


@pytest.mark.parametrize(
    ("trt", "match"),
    [
        ({"tensorrt": "10.3.0", "gpu": "Orin"}, None),
        ({"tensorrt": "10.0.1", "gpu": "Orin"}, "built with TensorRT 10.0.1, this machine has 10.3.0"),
        ({"tensorrt": "10.3.0", "gpu": "NVIDIA H200"}, "built for GPU 'NVIDIA H200', this machine has 'Orin'"),
        ({"segmenter": {}}, "do not record the TensorRT version and GPU"),
    ],
)
def test_the_runtime_refuses_plans_from_elsewhere(trt, match):
    if match is None:
        check_plans_match(trt, "10.3.0", "Orin", where="engines")
        return
    with pytest.raises(EngineError, match=match) as info:
        check_plans_match(trt, "10.3.0", "Orin", where="engines")
    assert "segzero-edge build-plans --engines engines" in str(info.value) and "\n" not in str(info.value)


def test_cli_help_and_missing_tensorrt(stub_copy):
    run = [sys.executable, "-m", "segzero_edge", "build-plans"]
    help_ = subprocess.run([*run, "--help"], capture_output=True, text=True, check=False)
    assert help_.returncode == 0 and "--workspace-gb" in help_.stdout and "--fp16" in help_.stdout
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    # the command never imports torch: a torch that fails to import changes nothing
    code = ("import sys; sys.modules['torch'] = None; from segzero_edge.cli import main; "
            f"sys.exit(main(['build-plans', '--engines', {str(stub_copy)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "pip install 'segzero-edge[trt]'" in out.stderr
    assert json.loads((Path(stub_copy) / "manifest.json").read_text()).get("components", {}).get("trt") is None


def test_build_plans_imports_no_torch():
    code = ("import sys; sys.modules['torch'] = None; import segzero_edge.export.build_plans, "
            "segzero_edge.export.plans, segzero_edge.cli.build_plans; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
