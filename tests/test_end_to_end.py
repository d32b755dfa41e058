"""The whole chain on the tiny models: `segzero-edge export` → `segment` gives the same answer
text as the PyTorch pipeline, `verify` passes, `eval` scores parsed answers equally on both back
ends (with a tiny reasoner overfitted to answer), and a tampered engine directory is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from segzero_edge.cli import main
from segzero_edge.manifest import EngineError

MAX_NEW = 40
QUERIES = ["the red circle", "The thing I could cut bread with."]


@pytest.fixture(scope="module")
def engines(tiny_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "engines"
    code = main([
        "export", "--reasoner", str(tiny_models.reasoner), "--segmenter", str(tiny_models.segmenter),
        "--out", str(out), "--reasoner-precision", "fp32", "--segmenter-precision", "fp32",
    ])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "scene.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 420, 3), dtype=np.uint8)).save(path)
    return path


def test_export_writes_a_verified_directory(engines):
    from segzero_edge.manifest import read_manifest

    manifest = read_manifest(engines)
    names = set(manifest.data["files"])
    assert {"reasoner/vision.onnx", "reasoner/embed.onnx", "reasoner/decoder.onnx", "reasoner/tokenizer.json",
            "segmenter/encoder.onnx", "segmenter/decoder.onnx"} <= names
    assert not list(engines.parent.glob(".engines.partial-*"))  # the staging folder is gone


def test_segment_cli_matches_the_torch_pipeline(tiny_models, engines, image_path, tmp_path):
    from segzero_edge.generation import GenerationConfig
    from segzero_edge.images import load_image
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.pipeline import ReasoningPipeline

    out_json = tmp_path / "r.json"
    code = main([
        "segment", "--engines", str(engines), "--image", str(image_path), "--query", QUERIES[0], "--query", QUERIES[1],
        "--max-new-tokens", str(MAX_NEW), "--json", str(out_json), "--out", str(tmp_path / "ov.png"),
    ])
    runtime = json.loads(out_json.read_text())
    reference = ReasoningPipeline(
        TorchReasoner.from_pretrained(tiny_models.reasoner, config=GenerationConfig(max_new_tokens=MAX_NEW)),
        TorchSegmenter.from_pretrained(tiny_models.segmenter),
    ).segment_many(load_image(image_path), QUERIES)
    assert [r["answer_text"] for r in runtime] == [r.answer_text for r in reference]
    assert [r["ok"] for r in runtime] == [r.ok for r in reference]
    assert code == (0 if all(r.ok for r in reference) else 3)
    assert (tmp_path / "ov-0.png").is_file() and (tmp_path / "ov-1.png").is_file()
    # the same number of generated tokens (a stop token ends both early, or both run to the budget)
    assert [r["timings"]["tokens"] for r in runtime] == [r.timings["tokens"] for r in reference]
    assert all(1 <= r["timings"]["tokens"] <= MAX_NEW for r in runtime)


def test_verify_cli_passes(engines, tmp_path):
    report = tmp_path / "parity.json"
    code = main(["verify", "--engines", str(engines), "--pairs", "2", "--max-new-tokens", "24",
                 "--images", "2", "--prompts", "5", "--json", str(report)])
    data = json.loads(report.read_text())
    assert code == 0 and data["passed"]
    assert data["reasoner"]["exact_rate"] == 1.0
    assert data["segmenter"]["min_mask_iou"] >= 0.99 and data["segmenter"]["index_agreement"] == 1.0


def test_tampered_engine_is_refused(engines, image_path, tmp_path, capsys):
    copy = tmp_path / "tampered"
    shutil.copytree(engines, copy)
    decoder = copy / "segmenter" / "decoder.onnx"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    from segzero_edge.runtime import ReasoningSegmenter

    with pytest.raises(EngineError, match="altered"):
        ReasoningSegmenter.from_dir(copy)
    code = main(["segment", "--engines", str(copy), "--image", str(image_path), "--query", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "altered" in err[0]


def test_export_refuses_to_overwrite(tiny_models, engines, capsys):
    code = main(["export", "--reasoner", str(tiny_models.reasoner), "--segmenter", str(tiny_models.segmenter),
                 "--out", str(engines)])
    assert code != 0 and "--force" in capsys.readouterr().err


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    from segzero_edge.evaldata import read_eval_set
    from segzero_edge.synthetic import write_dataset

    data = tmp_path_factory.mktemp("synth") / "data"
    write_dataset(data, sizes={"test": 3}, size=256, progress=False)
    return data / "test.parquet", list(read_eval_set(data / "test.parquet"))


@pytest.fixture(scope="module")
def answering(tiny_models, eval_set, tmp_path_factory):
    """(reasoner dir, engine dir): the tiny reasoner overfitted to answer the eval samples with
    one valid completion (`answering_reasoner`), and its fp32 export with the tiny segmenter."""
    from answering_reasoner import overfit_reasoner

    root = tmp_path_factory.mktemp("answering")
    reasoner = overfit_reasoner(tiny_models.reasoner, root / "reasoner", [(s.image, s.query) for s in eval_set[1]])
    engines = root / "engines"
    code = main(["export", "--reasoner", str(reasoner), "--segmenter", str(tiny_models.segmenter), "--out", str(engines),
                 "--reasoner-precision", "fp32", "--segmenter-precision", "fp32"])
    assert code == 0
    return reasoner, engines


def test_eval_cli_scores_parsed_answers_equally_on_both_back_ends(tiny_models, eval_set, answering, tmp_path, capsys):
    """Both back ends parse the answer, segment with it and score IoU > 0, to the same figures."""
    from answering_reasoner import COMPLETION

    reasoner, engines = answering
    lines = {}
    for name, backend in {
        "runtime": ["--engines", str(engines)],
        "torch": ["--reasoner", str(reasoner), "--segmenter", str(tiny_models.segmenter)],
    }.items():
        out = tmp_path / f"{name}.jsonl"
        code = main(["eval", *backend, "--data", str(eval_set[0]), "--max-new-tokens", "64", "--out", str(out)])
        assert code == 0
        lines[name] = capsys.readouterr().out.strip().splitlines()[-1]
        header, *records = [json.loads(line) for line in out.read_text().splitlines()]
        assert header["segzero_eval"] == 1 and len(records) == 3
        for r in records:  # the segmenter path ran: a parsed answer, a box, a mask that meets the target
            assert r["ok"] and r["answer"] == COMPLETION, r["answer"]
            assert r["bbox"] == [0, 0, 255, 255]  # the answer's whole-image box, rescaled to 256² and clipped
            assert r["intersection"] > 0 and r["union"] > 0
    assert lines["runtime"].startswith("gIoU=") and lines["runtime"].endswith("n=3")
    assert float(lines["runtime"].split()[0].removeprefix("gIoU=")) > 0
    assert lines["runtime"] == lines["torch"]


def test_export_reuses_the_segmenter_graphs_of_an_engine_dir(tiny_models, engines, tmp_path, capsys):
    """`--segmenter ENGINE_DIR`: a re-exported reasoner ships with byte-identical, verified
    segmenter graphs; a tampered source directory is refused before anything is copied."""
    from segzero_edge.manifest import read_manifest

    out = tmp_path / "re-exported"
    code = main(["export", "--reasoner", str(tiny_models.reasoner), "--segmenter", str(engines), "--out", str(out),
                 "--reasoner-precision", "fp32", "--verify"])
    assert code == 0, capsys.readouterr().err
    assert "verifying the reasoner only" in capsys.readouterr().out
    old, new = read_manifest(engines), read_manifest(out)
    assert new.component("segmenter") == old.component("segmenter")
    for name in (n for n in old.data["files"] if n.startswith("segmenter/")):
        assert (out / name).read_bytes() == (engines / name).read_bytes()
        assert new.data["files"][name]["sha256"] == old.data["files"][name]["sha256"]
    assert new.data["sources"]["segmenter"].startswith(str(tiny_models.segmenter))

    tampered = tmp_path / "tampered"
    shutil.copytree(engines, tampered)
    (tampered / "segmenter" / "decoder.onnx").write_bytes(b"not a graph")
    code = main(["export", "--reasoner", str(tiny_models.reasoner), "--segmenter", str(tampered),
                 "--out", str(tmp_path / "refused"), "--reasoner-precision", "fp32"])
    assert code != 0 and "altered" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
