"""A stub engine directory: every file, name, shape and manifest key a real one has, with
trivial graphs, so that it loads in milliseconds.

Tests of the engine loader (manifest validation, path containment, external data, the
mutated-manifest fuzz) and of everything around a call (query limits, prompt tokens, CLI
output handling) need a directory that `ReasoningSegmenter.from_dir` really opens, many
times; exporting the tiny models takes ~40 s and a load ~0.4 s. Here the graphs are a few
ONNX nodes each:

- the reasoner's decoder always answers `<|im_end|>` (so every `segment()` ends with an
  unparseable empty answer), its embed is a table lookup, its vision graph a mean;
- the segmenter returns a fixed centre-square mask with fixed scores.

Build with `write_stub_engine(out)` (needs the `onnx` package, from the `[export]` extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.graphs.reasoner_prompt import PARSERS, user_template
from segzero_edge.manifest import write_manifest
from segzero_edge.prompts import SYSTEM_PROMPT

OPSET = 18


@dataclass(frozen=True)
class StubDims:
    num_layers: int = 2
    kv_heads: int = 1
    head_dim: int = 4
    hidden: int = 16
    vision_head_dim: int = 8
    resize: int = 224
    max_pixels: int = 112 * 112  # → an 8×8 patch grid, 16 image tokens
    sam_channels: int = 8


def _model(nodes: list, inputs: list, outputs: list, initializers: list, meta: dict[str, str] | None = None):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "stub", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def _value(name: str, elem: int, shape: list) -> Any:
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, shape)


def _vision(dims: StubDims) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.graphs import reasoner_vision_io as io
    from segzero_edge.graphs.qwen_preprocess import QwenImageConfig

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    meta = io.VisionMeta(
        image=QwenImageConfig(min_pixels=56 * 56, max_pixels=dims.max_pixels),
        head_dim=dims.vision_head_dim,
        out_hidden=dims.hidden,
    )
    inputs = [
        _value(io.PIXEL_VALUES, f, ["n_patches", 1176]),
        _value(io.ROTARY_COS, f, ["n_patches", dims.vision_head_dim]),
        _value(io.ROTARY_SIN, f, ["n_patches", dims.vision_head_dim]),
        _value(io.WINDOW_GATHER, i64, ["n_windows", 64]),
        _value(io.WINDOW_VALID, TensorProto.BOOL, ["n_windows", 64]),
        _value(io.WINDOW_SCATTER, i64, ["n_patches"]),
    ]
    nodes = [
        helper.make_node("Reshape", [io.PIXEL_VALUES, "merge_shape"], ["merged"]),
        helper.make_node("ReduceMean", ["merged", "axes_12"], ["mean"], keepdims=1),  # [N/4, 1]
        helper.make_node("Squeeze", ["mean", "axis_2"], ["mean2"]),
        helper.make_node("Mul", ["mean2", "ones_h"], [io.IMAGE_FEATURES]),
    ]
    init = [
        numpy_helper.from_array(np.array([-1, 4, 1176], np.int64), "merge_shape"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes_12"),
        numpy_helper.from_array(np.array([2], np.int64), "axis_2"),
        numpy_helper.from_array(np.ones((1, dims.hidden), np.float32), "ones_h"),
    ]
    outputs = [_value(io.IMAGE_FEATURES, f, ["n_merged", dims.hidden])]
    return _model(nodes, inputs, outputs, init, {io.VISION_META_KEY: meta.to_json()})


def _embed(dims: StubDims, vocab: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.graphs import reasoner_text_io as io

    table = np.random.default_rng(0).standard_normal((vocab, dims.hidden)).astype(np.float32)
    return _model(
        [helper.make_node("Gather", ["table", io.EMBED_INPUT], [io.EMBED_OUTPUT], axis=0)],
        [_value(io.EMBED_INPUT, TensorProto.INT64, ["batch", "seq"])],
        [_value(io.EMBED_OUTPUT, TensorProto.FLOAT, ["batch", "seq", dims.hidden])],
        [numpy_helper.from_array(table, "table")],
    )


def _decoder(dims: StubDims, vocab: int, stop_id: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.graphs import reasoner_text_io as io

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    kv = [dims.kv_heads, dims.head_dim]
    inputs = [
        _value(io.INPUTS_EMBEDS, f, ["batch", "seq", dims.hidden]),
        _value(io.ATTENTION_MASK, i64, ["batch", "total"]),
        _value(io.POSITION_IDS, i64, [3, "batch", "seq"]),
        *[_value(n, f, ["batch", kv[0], "past", kv[1]]) for n in io.past_names(dims.num_layers)],
    ]
    logits_row = np.zeros((1, vocab), np.float32)
    logits_row[0, stop_id] = 10.0
    nodes = [
        # logits [B, V] = 0 * sum(inputs_embeds) + a row whose argmax is the stop id
        helper.make_node("ReduceSum", [io.INPUTS_EMBEDS, "axes_12"], ["total"], keepdims=0),
        helper.make_node("Unsqueeze", ["total", "axis_1"], ["total2"]),
        helper.make_node("Mul", ["total2", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "row"], [io.LOGITS]),
        # new keys/values [B, kv, S, hd] of zeros
        helper.make_node("Shape", [io.INPUTS_EMBEDS], ["shape"]),
        helper.make_node("Slice", ["shape", "start_0", "end_1"], ["b"]),
        helper.make_node("Slice", ["shape", "start_1", "end_2"], ["s"]),
        helper.make_node("Concat", ["b", "kv", "s", "hd"], ["kv_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["kv_shape"], ["kv_zeros"]),
        *[helper.make_node("Identity", ["kv_zeros"], [n]) for n in io.new_kv_names(dims.num_layers)],
    ]
    init = [
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes_12"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
        numpy_helper.from_array(logits_row, "row"),
        *[numpy_helper.from_array(np.array([v], np.int64), n) for n, v in
          (("start_0", 0), ("end_1", 1), ("start_1", 1), ("end_2", 2), ("kv", kv[0]), ("hd", kv[1]))],
    ]
    outputs = [
        _value(io.LOGITS, f, ["batch", vocab]),
        *[_value(n, f, ["batch", kv[0], "seq", kv[1]]) for n in io.new_kv_names(dims.num_layers)],
    ]
    return _model(nodes, inputs, outputs, init)


def _sam_encoder(dims: StubDims) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.graphs import segmenter_io as io

    c = dims.sam_channels
    shapes = {io.HIGH_RES_0: [1, c // 8 or 1, 256, 256], io.HIGH_RES_1: [1, c // 4 or 1, 128, 128],
              io.IMAGE_EMBEDDINGS: [1, c, 64, 64]}
    nodes = [helper.make_node("ConstantOfShape", [f"{n}_shape"], [n]) for n in io.ENCODER_OUTPUTS]
    init = [numpy_helper.from_array(np.array(shapes[n], np.int64), f"{n}_shape") for n in io.ENCODER_OUTPUTS]
    return _model(
        nodes,
        [_value(io.PIXEL_VALUES, TensorProto.FLOAT, [1, 3, 1024, 1024])],
        [_value(n, TensorProto.FLOAT, shapes[n]) for n in io.ENCODER_OUTPUTS],
        init,
    )


def _sam_decoder(dims: StubDims) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    from segzero_edge.graphs import segmenter_io as io

    f, c = TensorProto.FLOAT, dims.sam_channels
    masks = np.full((1, 3, 256, 256), -1.0, np.float32)
    masks[0, :, 64:192, 64:192] = 1.0  # a centre square, whatever the prompt
    inputs = [
        _value(io.IMAGE_EMBEDDINGS, f, [1, c, 64, 64]),
        _value(io.HIGH_RES_0, f, [1, c // 8 or 1, 256, 256]),
        _value(io.HIGH_RES_1, f, [1, c // 4 or 1, 128, 128]),
        _value(io.POINT_COORDS, f, [1, "num_points", 2]),
        _value(io.POINT_LABELS, f, [1, "num_points"]),
        _value(io.MASK_INPUT, f, [1, 1, 256, 256]),
        _value(io.HAS_MASK_INPUT, f, [1]),
    ]
    nodes = [helper.make_node("Identity", ["masks"], [io.LOW_RES_MASKS]),
             helper.make_node("Identity", ["scores"], [io.IOU_PREDICTIONS])]
    init = [numpy_helper.from_array(masks, "masks"),
            numpy_helper.from_array(np.array([[0.1, 0.9, 0.5]], np.float32), "scores")]
    outputs = [_value(io.LOW_RES_MASKS, f, [1, 3, 256, 256]), _value(io.IOU_PREDICTIONS, f, [1, 3])]
    return _model(nodes, inputs, outputs, init)


def reasoner_meta(dims: StubDims, special: dict[str, int], vocab: int, answer_format: str = "single") -> dict[str, Any]:
    """The reasoner component, with the same keys `export.reasoner.export_reasoner` writes."""
    prefix = (f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
              "<|vision_start|><|image_pad|><|vision_end|>")
    return {
        "architecture": "qwen2_5_vl",
        "source": "stub",
        "files": {"vision": "vision.onnx", "embed": "embed.onnx", "decoder": "decoder.onnx",
                  "tokenizer": "tokenizer.json"},
        "precision": {"vision": "fp32", "embed": "fp32", "decoder": "fp32"},
        "preprocess": {"resize": dims.resize, "patch_size": 14, "merge_size": 2, "max_pixels": dims.max_pixels},
        "prompt": {
            "prefix": prefix,
            "suffix": "<|im_end|>\n<|im_start|>assistant\n",
            "user_template": user_template(answer_format),
            "question_normalization": "lower_strip_dots",
            "system": SYSTEM_PROMPT,
            "answer_format": answer_format,
            "parser": PARSERS[answer_format],
        },
        "special_tokens": {
            "image_pad": special["<|image_pad|>"], "video_pad": special["<|video_pad|>"],
            "vision_start": special["<|vision_start|>"], "vision_end": special["<|vision_end|>"],
            "im_start": special["<|im_start|>"], "im_end": special["<|im_end|>"],
            "endoftext": special["<|endoftext|>"],
            "eos": [special["<|im_end|>"], special["<|endoftext|>"]], "pad": special["<|endoftext|>"],
        },
        "dims": {"model_type": "qwen2_5_vl", "num_layers": dims.num_layers, "num_heads": dims.kv_heads,
                 "kv_heads": dims.kv_heads, "head_dim": dims.head_dim, "hidden": dims.hidden, "vocab": vocab,
                 "spatial_merge_size": 2},
        "generation": {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0},
    }


def write_stub_engine(out: str | Path, dims: StubDims | None = None, *, answer_format: str = "single") -> Path:
    """Write a complete, loadable stub engine directory at `out` (created; must not exist)
    whose manifest records `answer_format` (its prompt and parser)."""
    import onnx

    from segzero_edge.graphs import segmenter_io
    from segzero_edge.testing.tokenizer import _trained_json, build_tokenizer, special_token_ids

    dims = dims or StubDims()
    out = Path(out)
    (out / "reasoner").mkdir(parents=True)
    (out / "segmenter").mkdir()
    tok = build_tokenizer()
    special = special_token_ids(tok)
    vocab = tok.get_vocab_size()
    (out / "reasoner" / "tokenizer.json").write_text(_trained_json(), encoding="utf-8")
    onnx.save(_vision(dims), str(out / "reasoner" / "vision.onnx"))
    onnx.save(_embed(dims, vocab), str(out / "reasoner" / "embed.onnx"))
    onnx.save(_decoder(dims, vocab, special["<|im_end|>"]), str(out / "reasoner" / "decoder.onnx"))
    onnx.save(_sam_encoder(dims), str(out / "segmenter" / "encoder.onnx"))
    onnx.save(_sam_decoder(dims), str(out / "segmenter" / "decoder.onnx"))
    segmenter = {**segmenter_io.default_meta(), "precision": {"encoder": "fp32", "decoder": "fp32"},
                 "max_points": 64}
    write_manifest(out, sources={"reasoner": "stub", "segmenter": "stub"},
                   components={"reasoner": reasoner_meta(dims, special, vocab, answer_format), "segmenter": segmenter})
    return out


def manifest_data(root: str | Path) -> dict[str, Any]:
    """The parsed manifest.json of an engine directory (for tests that mutate it)."""
    return json.loads((Path(root) / "manifest.json").read_text())
