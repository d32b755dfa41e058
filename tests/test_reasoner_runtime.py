"""OrtReasoner and the torch-free decode loop: an int4 engine end to end, streaming, stopping,
sampling, the KV cache, HF-identical logits processing, errors, and the import rule."""

from __future__ import annotations

import itertools
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from protocols import assert_accepts

from segzero_edge.pipeline import Generation, Reasoner
from segzero_edge.runtime.decoder import (
    GenerationConfig,
    KVCache,
    choose_token,
    repetition_penalty,
    top_p_filter,
)

QUERY = "the red circle"


@pytest.fixture(scope="module")
def torch_reasoner(tiny_models):
    pytest.importorskip("torch")
    from segzero_edge.models.reasoner import TorchReasoner

    return TorchReasoner.from_pretrained(tiny_models.reasoner)


@pytest.fixture(scope="module")
def int4_engine(torch_reasoner, tmp_path_factory):
    from segzero_edge.export.reasoner import export_reasoner

    out = tmp_path_factory.mktemp("engine") / "reasoner"
    meta = export_reasoner(torch_reasoner, out, precision="int4", block_size=32, progress=False)
    return out, meta


@pytest.fixture(scope="module")
def runtime(int4_engine):
    from segzero_edge.runtime.reasoner import OrtReasoner

    out, meta = int4_engine
    return OrtReasoner.from_dir(out, meta=meta, threads=2, config=GenerationConfig(max_new_tokens=32))


@pytest.fixture(scope="module")
def encoded(runtime):
    image = np.random.default_rng(5).integers(0, 256, size=(300, 200, 3), dtype=np.uint8)
    return runtime.encode_image(image)


def test_int4_engine_decodes_and_reports_agreement(int4_engine, runtime, torch_reasoner):
    """Random weights make int4 drift within a few tokens; the sound bar is "far from an
    unrelated model" (cosine ~0, top-1 at chance 1/1664), not closeness to fp32."""
    from segzero_edge.export.verify_reasoner import verify_reasoner

    _, meta = int4_engine
    assert meta["precision"] == {"vision": "int8", "embed": "int4", "decoder": "int4"}
    assert meta["quantization"] == {"int4_block_size": 32, "int4_accuracy_level": 4}
    report = verify_reasoner(torch_reasoner, runtime, n_pairs=2, max_new_tokens=24, seed=2)
    print(report.summary())
    assert all(p.prompt_equal for p in report.pairs)
    assert all(len(p.runtime_ids) >= 1 for p in report.pairs)
    assert report.prefill_cosine > 0.5 and report.top1 > 0.1


def test_int4_graphs_hold_matmulnbits_and_block_quantized_gather(int4_engine):
    onnx = pytest.importorskip("onnx")
    out, _ = int4_engine
    decoder_ops = {n.op_type for n in onnx.load(str(out / "decoder.onnx")).graph.node}
    embed_ops = {n.op_type for n in onnx.load(str(out / "embed.onnx")).graph.node}
    assert "MatMulNBits" in decoder_ops
    assert "GatherBlockQuantized" in embed_ops and "Gather" not in embed_ops
    nbits = [n for n in onnx.load(str(out / "decoder.onnx")).graph.node if n.op_type == "MatMulNBits"]
    # every Linear, with q/k/v and gate/up fused: (qkv, o, gate_up, down) x 2 layers + lm_head
    assert len(nbits) == 9
    attrs = {a.name: a.i for a in nbits[0].attribute}
    assert attrs["block_size"] == 32 and attrs["bits"] == 4 and attrs["accuracy_level"] == 4


def test_generate_is_a_reasoner_with_timings(runtime, encoded):
    assert_accepts(runtime.encode_image, Reasoner.encode_image)
    assert_accepts(runtime.generate, Reasoner.generate)
    g = runtime.generate(encoded, QUERY)
    assert isinstance(g, Generation)
    assert 1 <= g.tokens <= 32 and g.prefill_ms > 0 and g.decode_ms >= 0
    assert encoded.features.shape == (900, 64) and encoded.image.shape == (840, 840, 3)
    assert runtime.generate(encoded, QUERY).text == g.text  # greedy is deterministic


def test_streaming_callback_sees_every_token(runtime, encoded):
    seen: list[tuple[int, str]] = []
    g = runtime.generate(encoded, QUERY, on_token=lambda t, text: seen.append((t, text)))
    _, result = runtime.generate_ids(encoded, QUERY)
    assert [t for t, _ in seen] == result.ids
    assert seen[-1][1] == g.text
    assert all(b.startswith(a) or "\ufffd" in a for (_, a), (_, b) in itertools.pairwise(seen))


def test_max_new_tokens_and_stop_ids(runtime, encoded):
    _, long = runtime.generate_ids(encoded, QUERY, GenerationConfig(max_new_tokens=12))
    assert len(long.ids) == 12 or long.stopped
    prompt = runtime.prompt(encoded, QUERY)
    cfg = GenerationConfig(max_new_tokens=12, repetition_penalty=1.0)
    stop_at = long.ids[3]
    result = runtime.text.generate(
        prompt.inputs_embeds,
        prompt.position_ids,
        prompt.ids,
        rope_delta=prompt.rope_delta,
        config=cfg,
        stop_ids={stop_at},
    )
    assert result.stopped and result.ids == long.ids[: long.ids.index(stop_at) + 1]


def test_sampling_is_seeded_and_top_p_tiny_is_greedy(runtime, encoded):
    cfg = GenerationConfig(max_new_tokens=16, temperature=1.0, seed=11)
    a = runtime.generate_ids(encoded, QUERY, cfg)[1].ids
    b = runtime.generate_ids(encoded, QUERY, cfg)[1].ids
    c = runtime.generate_ids(encoded, QUERY, replace(cfg, seed=12))[1].ids
    assert a == b and a != c
    greedy = runtime.generate_ids(encoded, QUERY, GenerationConfig(max_new_tokens=16))[1].ids
    nucleus = runtime.generate_ids(encoded, QUERY, replace(cfg, top_p=1e-9))[1].ids
    assert nucleus == greedy  # only the top token survives a vanishing nucleus


def test_small_cache_chunks_change_nothing(int4_engine, runtime, encoded):
    from segzero_edge.runtime.decoder import TextDecoder

    prompt = runtime.prompt(encoded, QUERY)
    cfg = GenerationConfig(max_new_tokens=40, repetition_penalty=1.0)
    args = (prompt.inputs_embeds, prompt.position_ids, prompt.ids)
    base = runtime.text.generate(*args, rope_delta=prompt.rope_delta, config=cfg, stop_ids=set())
    t = runtime.text
    small = TextDecoder(
        t.embed_session,
        t.decoder_session,
        num_layers=t.num_layers,
        kv_heads=t.kv_heads,
        head_dim=t.head_dim,
        chunk=8,
    )
    grown = small.generate(*args, rope_delta=prompt.rope_delta, config=cfg, stop_ids=set())
    assert grown.ids == base.ids and len(base.ids) == 40


def test_image_encoded_once_for_many_queries(int4_engine):
    from segzero_edge.runtime.reasoner import OrtReasoner

    out, meta = int4_engine
    calls = []
    base = OrtReasoner.from_dir(out, meta=meta, threads=2)

    def vision(image):
        calls.append(image.shape)
        return base.vision(image)

    r = OrtReasoner.from_dir(
        out, meta=meta, threads=2, vision=vision, config=GenerationConfig(max_new_tokens=4)
    )
    enc = r.encode_image(np.zeros((64, 96, 3), np.uint8))
    r.generate(enc, "a")
    r.generate(enc, "b")
    assert calls == [(840, 840, 3)]


def test_configure_and_errors(int4_engine, runtime, encoded, tmp_path):
    from segzero_edge.runtime.reasoner import OrtReasoner

    out, meta = int4_engine
    r = OrtReasoner.from_dir(out, meta=meta, threads=2)
    r.configure(max_new_tokens=3)
    assert r.generate(encoded, QUERY).tokens <= 3
    with pytest.raises(TypeError, match="unknown generation settings"):
        r.configure(beams=4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        r.configure(max_new_tokens=0)
    with pytest.raises(FileNotFoundError, match="ONNX graph not found"):
        OrtReasoner.from_dir(tmp_path, meta=meta)
    with pytest.raises(ValueError, match="do not match"):
        bad = {**meta, "dims": {**meta["dims"], "num_layers": 3}}
        OrtReasoner.from_dir(out, meta=bad)
    with pytest.raises(ValueError, match="lacks"):
        from segzero_edge.runtime.tokenizer import PromptTokenizer

        PromptTokenizer.from_file(out / "tokenizer.json", {"prompt": meta["prompt"]})


def test_kv_cache_grows_in_chunks_and_keeps_content():
    cache = KVCache(2, 2, 4, capacity=8, chunk=8)
    cache.append([np.full((1, 2, 5, 4), i, np.float32) for i in range(4)])
    assert cache.capacity == 8 and cache.length == 5
    cache.append([np.full((1, 2, 6, 4), 10 + i, np.float32) for i in range(4)])  # 11 > 8: grows to 16
    assert cache.capacity == 16 and cache.length == 11
    assert cache.mask.tolist() == [[1] * 11 + [0] * 5]
    assert (cache.buffers[1][:, :, :5] == 1).all() and (cache.buffers[1][:, :, 5:11] == 11).all()
    assert (cache.buffers[1][:, :, 11:] == 0).all()
    cache.reserve(40)
    assert cache.capacity == 56 and cache.length == 11 and (cache.buffers[3][:, :, 5:11] == 13).all()


def test_logits_processing_matches_transformers():
    torch = pytest.importorskip("torch")
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor, TopPLogitsWarper

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(500) * 3).astype(np.float32)
    seen = rng.integers(0, 520, size=60)  # repeats, and ids past the vocab (ignored by both)
    hf = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor(seen[None]), torch.tensor(logits[None]))
    ours = repetition_penalty(logits, seen, 1.3)
    np.testing.assert_array_equal(ours, hf[0].numpy())
    for p in (0.05, 0.5, 0.9):
        hf = TopPLogitsWarper(p)(None, torch.tensor(logits[None]))[0].numpy()
        np.testing.assert_array_equal(np.isinf(top_p_filter(logits, p)), np.isinf(hf))
    assert choose_token(logits, GenerationConfig(), seen[:0], None) == int(np.argmax(logits))


def test_runtime_modules_are_torch_free():
    code = (
        "import sys\nimport segzero_edge.runtime.reasoner, segzero_edge.runtime.decoder, "
        "segzero_edge.runtime.tokenizer, segzero_edge.graphs.reasoner_text_io\n"
        "print(' '.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
