"""The engine manifest records the answer format (with its prompt and parser) and the runtime
follows it: `export --answer-format multi` -> `components.reasoner.prompt`, the runtime's
`ReasoningSegmenter` parses and segments that format, old manifests read as single."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import ScriptedReasoner

from segzero_edge.graphs.reasoner_prompt import PARSERS, user_template
from segzero_edge.manifest import EngineError, engines_answer_format, read_manifest
from segzero_edge.prompts import user_prompt

pytest.importorskip("onnx")

MULTI_ANSWER = (
    '<think>two of them</think><answer>[{"bbox_2d": [0, 0, 420, 420], "point_2d": [210, 210]}, '
    '{"bbox_2d": [420, 420, 839, 839], "point_2d": [630, 630]}]</answer>'
)


@pytest.fixture(scope="module")
def multi_engine(tmp_path_factory):
    from segzero_edge.testing.stub_engine import write_stub_engine

    return write_stub_engine(tmp_path_factory.mktemp("multi") / "engines", answer_format="multi")


def _rewrite_prompt(root, **changes) -> None:
    """Edit the reasoner's prompt entry in place (None deletes a key). manifest.json is not
    among the hashed files, so the directory still verifies."""
    path = root / "manifest.json"
    data = json.loads(path.read_text())
    prompt = data["components"]["reasoner"]["prompt"]
    for key, value in changes.items():
        if value is None:
            prompt.pop(key, None)
        else:
            prompt[key] = value
    path.write_text(json.dumps(data))


def test_manifest_records_format_prompt_and_parser(multi_engine, stub_engine):
    multi = read_manifest(multi_engine).component("reasoner")["prompt"]
    assert (multi["answer_format"], multi["parser"]) == ("multi", PARSERS["multi"])
    assert multi["user_template"] == user_template("multi")
    single = read_manifest(stub_engine).component("reasoner")["prompt"]
    assert (single["answer_format"], single["parser"]) == ("single", "segzero_edge.answer.parse_answer")
    assert engines_answer_format(multi_engine) == "multi" and engines_answer_format(stub_engine) == "single"


def test_runtime_follows_the_manifest(multi_engine, stub_engine):
    from segzero_edge.runtime import ReasoningSegmenter

    seg = ReasoningSegmenter.from_dir(multi_engine)
    assert seg.answer_format == "multi" and seg.reasoner.answer_format == "multi"
    # the runtime renders exactly the multi prompt the torch reference sends
    assert seg.reasoner.tokenizer.user_text("All the Red shapes.") == user_prompt(
        "All the Red shapes.", "multi"
    )
    assert ReasoningSegmenter.from_dir(stub_engine).answer_format == "single"


def test_multi_engine_segments_every_object_on_the_ort_segmenter(multi_engine):
    from segzero_edge.runtime import ReasoningSegmenter

    seg = ReasoningSegmenter.from_dir(multi_engine)
    seg.reasoner = ScriptedReasoner(MULTI_ANSWER)  # the stub decoder never answers; its segmenter is real ORT
    image = np.zeros((420, 840, 3), np.uint8)
    results = seg.segment_many(image, ["all the squares", "every square"])
    for r in results:
        assert r.ok, r.error
        # int(v * W / 840 + 0.5) per value: x scales by 1, y by 1/2
        assert [o.bbox for o in r.objects] == [(0, 0, 420, 210), (420, 210, 839, 419)]
        assert [o.points for o in r.objects] == [((210, 105),), ((630, 315),)]
        assert np.array_equal(r.mask, r.objects[0].mask | r.objects[1].mask)
        assert r.bbox == (0, 0, 839, 419) and r.score is None
    assert results[1].timings["segmenter_encode_ms"] == 0.0  # one image encoding for both queries
    data = results[0].to_json()
    assert [o["bbox"] for o in data["objects"]] == [[0, 0, 420, 210], [420, 210, 839, 419]]


def test_old_manifest_without_a_format_is_single(stub_copy):
    from segzero_edge.runtime import ReasoningSegmenter

    _rewrite_prompt(stub_copy, answer_format=None, parser=None)
    assert engines_answer_format(stub_copy) == "single"
    seg = ReasoningSegmenter.from_dir(stub_copy)
    assert seg.answer_format == "single" and seg.reasoner.answer_format == "single"


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"answer_format": "json"}, r"prompt\.answer_format: must be one of single, multi"),
        (
            {"parser": PARSERS["multi"]},
            r"prompt\.parser: must be 'segzero_edge\.answer\.parse_answer' for the 'single'",
        ),
        ({"answer_format": "multi"}, r"prompt\.parser: must be 'segzero_edge\.answer\.parse_multi_answer'"),
    ],
)
def test_bad_format_or_parser_is_refused(stub_copy, changes, match):
    _rewrite_prompt(stub_copy, **changes)
    with pytest.raises(EngineError, match=match):
        read_manifest(stub_copy)
    with pytest.raises(EngineError, match=match):
        engines_answer_format(stub_copy)


def test_eval_cli_takes_the_format_from_the_engines(multi_engine, tmp_path, capsys):
    from segzero_edge.cli import main
    from segzero_edge.exit_codes import ExitCode
    from segzero_edge.synthetic.multi_dataset import write_multi_dataset

    write_multi_dataset(tmp_path / "m", {"test": 2}, size=256, seed=0, progress=False, no_target_rate=0.5)
    data, out = tmp_path / "m" / "test.parquet", tmp_path / "r.jsonl"
    base = ["eval", "--engines", str(multi_engine), "--data", str(data), "--out", str(out)]
    assert main([*base, "--answer-format", "single"]) == ExitCode.USAGE_ERROR
    assert "render the 'multi' prompt, not 'single'" in capsys.readouterr().err
    assert main([*base, "--no-target"]) == ExitCode.OK  # the stub never answers: scored as failures
    header = json.loads(out.read_text().splitlines()[0])["provenance"]
    assert (header["answer_format"], header["no_target"], header["box_metric"]) == ("multi", True, "any")
    assert "failed=2" in capsys.readouterr().out


def test_export_config_checks_the_format():
    from segzero_edge.export.engine import ExportConfig

    assert ExportConfig("r", "s", "out", answer_format="multi").answer_format == "multi"
    with pytest.raises(ValueError, match="unknown answer format 'json'"):
        ExportConfig("r", "s", "out", answer_format="json")


def test_torch_reference_and_multi_manifest_build_the_same_prompt_ids(tiny_models):
    """The multi manifest's prompt, rendered by the runtime, gives the ids the torch reasoner
    built with answer_format='multi' feeds its model (so both back ends see one prompt)."""
    pytest.importorskip("torch")
    from tokenizers import Tokenizer

    from segzero_edge.export.reasoner import prompt_metadata, special_tokens
    from segzero_edge.models.reasoner import TorchReasoner
    from segzero_edge.runtime.tokenizer import PromptTokenizer

    torch_reasoner = TorchReasoner.from_pretrained(tiny_models.reasoner, answer_format="multi")
    processor = torch_reasoner.processor
    meta = {"prompt": prompt_metadata(processor, "multi"),
            "special_tokens": special_tokens(processor, torch_reasoner.eos_ids, torch_reasoner.pad_id)}  # fmt: skip
    assert meta["prompt"]["answer_format"] == "multi"
    runtime = PromptTokenizer(Tokenizer.from_file(str(tiny_models.reasoner / "tokenizer.json")), meta)
    image = np.full((64, 96, 3), 90, np.uint8)
    encoded = torch_reasoner.encode_image(image)
    n_image = int(encoded.image_grid_thw.prod()) // 4
    for query in ("All the Red shapes.", "every shape left of the ring<|im_end|>"):
        ids = torch_reasoner.prompt_inputs(encoded, query)["input_ids"][0].numpy()
        assert np.array_equal(ids, runtime.encode_prompt(query, n_image)), query


def test_overlay_and_printout_show_every_object(capsys):
    from fakes import BoxSegmenter

    from segzero_edge.cli.segment import print_result
    from segzero_edge.overlay import describe_objects, render_overlay
    from segzero_edge.pipeline import ReasoningPipeline

    image = np.zeros((840, 840, 3), np.uint8)
    two = ReasoningPipeline(ScriptedReasoner(MULTI_ANSWER), BoxSegmenter(), "multi").segment(image, "q")
    none = ReasoningPipeline(ScriptedReasoner("<think>x</think><answer>[]</answer>"), BoxSegmenter(), "multi")
    empty = none.segment(image, "q")
    assert two.ok and empty.ok and empty.bbox is None and not empty.mask.any()
    assert describe_objects(two).startswith("2 objects: #0 bbox=[0, 0, 420, 420] point=[210, 210]")
    assert describe_objects(empty) == "no object matches (empty mask)"
    print_result(empty)  # an ok answer without objects prints (it has no box to print)
    assert "no object matches" in capsys.readouterr().out
    drawn = np.asarray(render_overlay(image, two, caption=False))
    # each object's own box is outlined: the gap between the two squares stays unpainted,
    # which drawing only the enclosing box would not show
    assert drawn[0, 0].any() and drawn[420, 420].any() and drawn[839, 839].any()
    assert not drawn[0, 839].any() and not drawn[839, 0].any()
