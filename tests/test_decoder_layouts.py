"""The fused decoder graph (contrib ops, I/O-bound device cache) against the portable graph run
by the host loop: same greedy tokens, same logits, the cache written in place, a lean graph."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from segzero_edge.export.reasoner_text import export_decoder, export_embed, text_dims  # noqa: E402
from segzero_edge.generation import GenerationConfig  # noqa: E402
from segzero_edge.graphs import reasoner_text_io as io  # noqa: E402
from segzero_edge.runtime.decode_steps import BoundSteps, HostSteps  # noqa: E402
from segzero_edge.runtime.decoder import TextDecoder  # noqa: E402
from segzero_edge.runtime.providers import create_session  # noqa: E402

QUERY = "the red circle"


@pytest.fixture(scope="module")
def torch_reasoner(tiny_models):
    from segzero_edge.models.reasoner import TorchReasoner

    return TorchReasoner.from_pretrained(tiny_models.reasoner)


@pytest.fixture(scope="module")
def graphs(torch_reasoner, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    model = torch_reasoner.model
    export_embed(model, root / "embed.onnx")
    for layout in io.KV_LAYOUTS:
        export_decoder(model, root / f"decoder_{layout}.onnx", layout=layout)
    return root


def _decoder(root, layout: str, dims: dict) -> TextDecoder:
    return TextDecoder(
        create_session(root / "embed.onnx", threads=2),
        create_session(root / f"decoder_{layout}.onnx", threads=2),
        num_layers=dims["num_layers"],
        kv_heads=dims["kv_heads"],
        head_dim=dims["head_dim"],
    )


@pytest.fixture(scope="module")
def decoders(graphs, torch_reasoner):
    dims = text_dims(torch_reasoner.model)
    return {layout: _decoder(graphs, layout, dims) for layout in io.KV_LAYOUTS}


@pytest.fixture(scope="module")
def prompt(torch_reasoner, decoders):
    """(prompt ids [S], embeddings [1,S,H] with image rows, M-RoPE positions [3,1,S], rope delta)."""
    from segzero_edge.graphs.qwen_rope import rope_index

    image = np.random.default_rng(3).integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
    enc = torch_reasoner.encode_image(image)
    ids = torch_reasoner.prompt_inputs(enc, QUERY)["input_ids"][0].numpy()
    pad = torch_reasoner.model.config.image_token_id
    embeds = decoders["portable"].embed(ids[None])
    embeds[0, ids == pad] = enc.features.numpy()
    positions, deltas = rope_index(ids[None], enc.image_grid_thw.numpy(), image_token_id=pad)
    assert len(set(positions[:, 0].reshape(3, -1)[:, ids == pad][1])) > 1  # real 2-D image positions
    return ids, embeds, positions, int(deltas[0, 0])


def test_layouts_are_read_from_the_outputs(decoders):
    assert decoders["fused"].layout == "fused" and decoders["portable"].layout == "portable"
    assert isinstance(decoders["fused"].steps(8), BoundSteps)
    assert isinstance(decoders["portable"].steps(8), HostSteps)
    with pytest.raises(ValueError, match="match no 2-layer decoder layout"):
        io.kv_layout(["logits", "kv.0"], 2)


def test_bound_loop_is_token_exact_with_the_host_loop(decoders, prompt):
    """The I/O-bound loop over the fused graph gives the host loop's greedy tokens over the
    portable graph (the loop before this change), with and without a repetition penalty."""
    ids, embeds, positions, delta = prompt
    for penalty in (1.0, 1.3):
        cfg = GenerationConfig(max_new_tokens=64, repetition_penalty=penalty)
        runs = {
            layout: d.generate(embeds, positions, ids, rope_delta=delta, config=cfg, stop_ids=set())
            for layout, d in decoders.items()
        }
        assert len(runs["fused"].ids) == 64
        assert runs["fused"].ids == runs["portable"].ids, penalty


def test_bound_loop_logits_match_the_host_loop(decoders, prompt):
    _ids, embeds, positions, delta = prompt
    forced = np.random.default_rng(0).integers(0, 1600, size=24)
    a = decoders["fused"].teacher_forced(embeds, positions, forced, rope_delta=delta)
    b = decoders["portable"].teacher_forced(embeds, positions, forced, rope_delta=delta)
    assert a.shape == b.shape == (24, decoders["fused"].vocab)
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-4 * np.abs(b).max())


def test_bound_cache_is_written_in_place(decoders, prompt):
    """The buffers bound as past are the ones the graph writes: after prefill and two steps
    they hold the same (rotated) keys and values as the host loop's numpy cache."""
    ids, embeds, positions, delta = prompt
    s = len(ids)
    bound = decoders["fused"].steps(s + 2)
    host = decoders["portable"].steps(s + 2)
    for steps in (bound, host):
        steps.prefill(embeds, positions)
        steps.step(5, s + delta)
    assert bound.length == host.cache.length == s + 1
    for value, buf in zip(bound.kv, host.cache.buffers, strict=True):
        got = value.numpy()
        assert got.shape[2] == s + 2  # the exact capacity: no growth, no copies
        np.testing.assert_allclose(got[:, :, : s + 1], buf[:, :, : s + 1], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="needs 3 cache slots, 2 were allocated"):
        short = decoders["fused"].steps(2)
        short.prefill(embeds[:, :2], positions[:, :, :2])
        short.step(1, 2)


def test_fused_graph_is_lean(graphs, torch_reasoner):
    dims = text_dims(torch_reasoner.model)
    layers = dims["num_layers"]
    fused = onnx.load(str(graphs / "decoder_fused.onnx"))
    portable = onnx.load(str(graphs / "decoder_portable.onnx"))
    ops = Counter(n.op_type for n in fused.graph.node)
    assert ops["GroupQueryAttention"] == layers
    assert ops["SkipSimplifiedLayerNormalization"] == 2 * layers - 1 + 1  # residual+norm pairs, final norm
    assert ops["Softmax"] == 0 and ops["Transpose"] == 0 and ops["Reshape"] == 0
    per_layer = (len(fused.graph.node) - 25) / layers  # ~25 per-step nodes (lengths, rotary table, lm_head)
    assert per_layer <= 12, per_layer
    assert len(fused.graph.node) < len(portable.graph.node) / 2
    assert [i.name for i in fused.graph.input] == io.decoder_input_names(layers)
    assert [o.name for o in fused.graph.output] == io.decoder_output_names(layers, "fused")


def test_fp16_fused_graph_keeps_the_rotary_tables_float32(graphs, tmp_path):
    from segzero_edge.export.precision import convert
    from segzero_edge.export.reasoner_decoder_fused import ROPE_NODES
    from segzero_edge.export.reasoner_text import PRECISION_POLICY

    convert(graphs / "decoder_fused.onnx", tmp_path / "d16.onnx", "fp16", PRECISION_POLICY)
    half = onnx.load(str(tmp_path / "d16.onnx"))
    by_name = {n.name: n for n in half.graph.node}
    cos = by_name["rope/cos"]
    types = {v.name: v.type.tensor_type.elem_type for v in (*half.graph.value_info, *half.graph.input)}
    assert types.get(cos.input[0], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT
    assert set(ROPE_NODES) <= set(by_name)
    select = next(t for t in half.graph.initializer if t.name == "rope.select")
    assert select.data_type == onnx.TensorProto.FLOAT
