"""The fused decoder graph (`decoder.onnx`, kv layout "fused"): Qwen2's language model written
straight from its weights with ONNX Runtime's contrib ops, about 12 nodes per layer.

Per layer: SkipSimplifiedLayerNormalization (residual Add + RMSNorm in one op), one MatMul for
q/k/v (+ bias), GroupQueryAttention (rotary, the KV append into the shared cache buffer,
grouped heads, causal softmax: one op), the output MatMul, SkipSimplifiedLayerNormalization,
one MatMul for gate/up, Split, SiLU as Sigmoid + Mul, Mul, the down MatMul. The portable
graph (`reasoner_text.DecoderForExport`, standard ops only) spends ~30 nodes per layer on
attention and RoPE alone.

M-RoPE. GroupQueryAttention's rotary reads cos/sin rows of a table by position. Here the table
is computed per step from `position_ids` [3, 1, S] exactly as HF does (position * inv_freq,
each frequency taking its M-RoPE section's axis, then cos/sin), one row per new token, and the
op's `position_ids` are 0..S-1, so row s rotates token s whatever its three axes hold (prefill
with an image as well as decode). The op checks that the table has at least
total_sequence_length rows, so it is zero-padded to that length (a few KB per step; the padded
rows are never read). The op reads one start position per first prompt for the whole batch,
which is why the graph is batch 1 (the runtime's only mode).

The cache. `past_key_values.*` [1, kv, C, hd] are buffers of capacity C >= past + S; the runtime
binds the same buffer as `present_key_values.*` (onnxruntime I/O binding), and the op then
writes the S new keys/values at slots [past, past + S) in place and reads only the first
sum(attention_mask) slots. `attention_mask` [1, past + S] must be all ones (its sum and
length give the op's sequence lengths).

Parity: fp32 greedy tokens equal transformers' (`export.verify_reasoner`), as for the portable
graph; the fp16 rotary tables stay fp32 (`ROPE_NODES`), since positions above 2048 are not
exact in fp16.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segzero_edge.export.onnx_io import needs_external_data, save_onnx
from segzero_edge.graphs import reasoner_text_io as io

if TYPE_CHECKING:
    from transformers import PreTrainedModel

OPSET = 21
#: Names of the nodes that build the rotary tables; the fp16 conversion keeps them float32.
ROPE_NODES = ("rope/cast", "rope/pos4", "rope/freqs", "rope/sum", "rope/cos", "rope/sin", "rope/pad_cos", "rope/pad_sin")


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class _Graph:
    """Nodes and initializers being collected."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **attrs) -> list[str]:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return outputs


def _rope_tables(g: _Graph, language_model, seq_len: str, total: str) -> tuple[str, str, str]:
    """(cos, sin, gqa_position_ids): the step's M-RoPE tables [max(S, T), hd/2] and 0..S-1."""
    rotary = language_model.rotary_emb
    inv_freq = _np(rotary.inv_freq)  # [hd/2]
    half = inv_freq.shape[0]
    sections = [int(s) for s in rotary.mrope_section]
    if sum(sections) != half:
        raise ValueError(f"mrope_section {sections} does not cover head_dim/2 = {half} frequencies")
    # select[a, j] = inv_freq[j] where frequency j takes axis a (HF's recomposition_frequencies:
    # section i of the frequencies reads axis i % 3), else 0; pos @ select is exact (x + 0 + 0).
    select = np.zeros((3, half), np.float32)
    start = 0
    for i, size in enumerate(sections):
        select[i % 3, start : start + size] = inv_freq[start : start + size]
        start += size
    scale = float(getattr(rotary, "attention_scaling", 1.0))
    if scale != 1.0:
        raise ValueError(f"rope attention_scaling {scale} != 1 (a scaled rope type) is not supported by the fused graph")
    # Mul + ReduceSum, not a MatMul: the int8/int4 conversions quantize constant-weight MatMuls
    g.node("Cast", [io.POSITION_IDS], ["rope.pos_f"], "rope/cast", to=1)
    g.node("Unsqueeze", ["rope.pos_f", g.const("rope.axis_last", np.array([-1], np.int64))], ["rope.pos4"], "rope/pos4")
    select4 = g.const("rope.select", select[:, None, None, :])  # [3,1,1,hd/2]
    g.node("Mul", ["rope.pos4", select4], ["rope.freqs3"], "rope/freqs")  # [3,1,S,hd/2]
    g.node("ReduceSum", ["rope.freqs3", g.const("rope.axes01", np.array([0, 1], np.int64))], ["rope.freqs2"],
           "rope/sum", keepdims=0)  # [S,hd/2]
    g.node("Cos", ["rope.freqs2"], ["rope.cos_s"], "rope/cos")
    g.node("Sin", ["rope.freqs2"], ["rope.sin_s"], "rope/sin")
    # pad to T rows: pads = [0, 0, T - S, 0]
    g.node("Sub", [total, seq_len], ["rope.extra"], "rope/extra")
    zeros = g.const("rope.zeros2", np.zeros(2, np.int64))
    g.node("Concat", [zeros, "rope.extra", g.const("rope.zero1", np.zeros(1, np.int64))], ["rope.pads"], "rope/pads", axis=0)
    g.node("Pad", ["rope.cos_s", "rope.pads"], ["rope.cos"], "rope/pad_cos")
    g.node("Pad", ["rope.sin_s", "rope.pads"], ["rope.sin"], "rope/pad_sin")
    one = g.const("rope.one", np.array(1, np.int64))
    g.node("Squeeze", [seq_len, g.const("rope.axes0", np.array([0], np.int64))], ["rope.s_scalar"], "rope/s_scalar")
    g.node("Range", [g.const("rope.start", np.array(0, np.int64)), "rope.s_scalar", one], ["rope.range"], "rope/range")
    g.node("Unsqueeze", ["rope.range", g.const("rope.axes0b", np.array([0], np.int64))], ["rope.positions"], "rope/positions")
    return "rope.cos", "rope.sin", "rope.positions"


def build_fused_decoder(model: PreTrainedModel):
    """The fused decoder as an `onnx.ModelProto` (I/O: `reasoner_text_io`, layout "fused")."""
    from onnx import TensorProto, helper

    from segzero_edge.export.reasoner_text import text_dims, text_parts

    language_model, lm_head = text_parts(model)
    cfg = language_model.config
    d = text_dims(model)
    nh, kv, hd, hidden = d["num_heads"], d["kv_heads"], d["head_dim"], d["hidden"]
    if getattr(cfg, "head_dim", hd) not in (None, hd):
        raise ValueError(f"config head_dim {cfg.head_dim} != hidden/heads {hd}: not a Qwen2 layout")
    if getattr(cfg, "hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {cfg.hidden_act!r}: the fused graph writes SiLU")
    g = _Graph()
    # step scalars: S (new tokens), T (past + S), GQA's seqlens_k = sum(mask) - 1 and total = T
    g.node("Shape", [io.INPUTS_EMBEDS], ["step.s"], "step/s", start=1, end=2)
    g.node("Shape", [io.ATTENTION_MASK], ["step.t"], "step/t", start=1, end=2)
    g.node("ReduceSum", [io.ATTENTION_MASK, g.const("step.axis1", np.array([1], np.int64))], ["step.sum"], "step/sum", keepdims=0)
    g.node("Sub", ["step.sum", g.const("step.one", np.array([1], np.int64))], ["step.seqlens64"], "step/seqlens")
    g.node("Cast", ["step.seqlens64"], ["step.seqlens_k"], "step/seqlens_i32", to=TensorProto.INT32)
    g.node("Squeeze", ["step.t", g.const("step.axes0", np.array([0], np.int64))], ["step.t_scalar"], "step/t_scalar")
    g.node("Cast", ["step.t_scalar"], ["step.total"], "step/total_i32", to=TensorProto.INT32)
    cos, sin, rope_pos = _rope_tables(g, language_model, "step.s", "step.t")

    hidden_state, mlp_out = io.INPUTS_EMBEDS, None
    presents = io.present_names(d["num_layers"])
    pasts = io.past_names(d["num_layers"])
    for i, layer in enumerate(language_model.layers):
        p = f"layers.{i}"
        attn, mlp = layer.self_attn, layer.mlp
        eps = float(layer.input_layernorm.variance_epsilon)
        ln1 = g.const(f"{p}.input_layernorm.weight", _np(layer.input_layernorm.weight))
        if mlp_out is None:
            (x,) = g.node("SimplifiedLayerNormalization", [hidden_state, ln1], [f"{p}.ln1"], f"{p}/ln1", axis=-1, epsilon=eps)
        else:
            x, _, _, hidden_state = g.node(
                "SkipSimplifiedLayerNormalization", [mlp_out, hidden_state, ln1],
                [f"{p}.ln1", "", "", f"{p}.residual1"], f"{p}/ln1", domain="com.microsoft", epsilon=eps,
            )
        w_qkv = np.concatenate([_np(attn.q_proj.weight).T, _np(attn.k_proj.weight).T, _np(attn.v_proj.weight).T], 1)
        (qkv,) = g.node("MatMul", [x, g.const(f"{p}.qkv.weight", w_qkv)], [f"{p}.qkv"], f"{p}/qkv")
        if attn.q_proj.bias is not None:
            b_qkv = np.concatenate([_np(attn.q_proj.bias), _np(attn.k_proj.bias), _np(attn.v_proj.bias)])
            (qkv,) = g.node("Add", [qkv, g.const(f"{p}.qkv.bias", b_qkv)], [f"{p}.qkv_b"], f"{p}/qkv_bias")
        att, _, _ = g.node(
            "GroupQueryAttention",
            [qkv, "", "", pasts[2 * i], pasts[2 * i + 1], "step.seqlens_k", "step.total", cos, sin, rope_pos],
            [f"{p}.attn", presents[2 * i], presents[2 * i + 1]],
            f"{p}/gqa", domain="com.microsoft",
            num_heads=nh, kv_num_heads=kv, do_rotary=1, rotary_interleaved=0, scale=float(hd**-0.5),
        )
        (o,) = g.node("MatMul", [att, g.const(f"{p}.o.weight", _np(attn.o_proj.weight).T)], [f"{p}.o"], f"{p}/o")
        if attn.o_proj.bias is not None:
            (o,) = g.node("Add", [o, g.const(f"{p}.o.bias", _np(attn.o_proj.bias))], [f"{p}.o_b"], f"{p}/o_bias")
        ln2 = g.const(f"{p}.post_attention_layernorm.weight", _np(layer.post_attention_layernorm.weight))
        x2, _, _, hidden_state = g.node(
            "SkipSimplifiedLayerNormalization", [o, hidden_state, ln2],
            [f"{p}.ln2", "", "", f"{p}.residual2"], f"{p}/ln2", domain="com.microsoft",
            epsilon=float(layer.post_attention_layernorm.variance_epsilon),
        )
        inter = mlp.gate_proj.weight.shape[0]
        w_gu = np.concatenate([_np(mlp.gate_proj.weight).T, _np(mlp.up_proj.weight).T], 1)
        (gu,) = g.node("MatMul", [x2, g.const(f"{p}.gate_up.weight", w_gu)], [f"{p}.gate_up"], f"{p}/gate_up")
        sizes = g.const(f"{p}.gate_up.sizes", np.array([inter, inter], np.int64))
        gate, up = g.node("Split", [gu, sizes], [f"{p}.gate", f"{p}.up"], f"{p}/split", axis=-1)
        g.node("Sigmoid", [gate], [f"{p}.sig"], f"{p}/sigmoid")
        g.node("Mul", [gate, f"{p}.sig"], [f"{p}.silu"], f"{p}/silu")
        g.node("Mul", [f"{p}.silu", up], [f"{p}.act"], f"{p}/act")
        (mlp_out,) = g.node("MatMul", [f"{p}.act", g.const(f"{p}.down.weight", _np(mlp.down_proj.weight).T)], [f"{p}.down"], f"{p}/down")
    norm = language_model.norm
    (y,) = g.node(
        "SkipSimplifiedLayerNormalization", [mlp_out, hidden_state, g.const("norm.weight", _np(norm.weight))],
        ["final.norm"], "final/norm", domain="com.microsoft", epsilon=float(norm.variance_epsilon),
    )
    # the last position only; [1,1,H] @ [H,V] keeps lm_head a MatMul (int4 covers it)
    g.node("Slice", [y, g.const("final.m1", np.array([-1], np.int64)), g.const("final.end", np.array([2**62], np.int64)),
                     g.const("final.axis1", np.array([1], np.int64))], ["final.last"], "final/last")
    g.node("MatMul", ["final.last", g.const("lm_head.weight", _np(lm_head.weight).T)], ["final.logits3"], "final/lm_head")
    g.node("Squeeze", ["final.logits3", g.const("final.axes1", np.array([1], np.int64))], [io.LOGITS], "final/logits")

    f = TensorProto.FLOAT
    cache = [1, kv, "capacity", hd]
    inputs = [
        helper.make_tensor_value_info(io.INPUTS_EMBEDS, f, [1, "seq", hidden]),
        helper.make_tensor_value_info(io.ATTENTION_MASK, TensorProto.INT64, [1, "total"]),
        helper.make_tensor_value_info(io.POSITION_IDS, TensorProto.INT64, [3, 1, "seq"]),
        *[helper.make_tensor_value_info(n, f, cache) for n in pasts],
    ]
    outputs = [
        helper.make_tensor_value_info(io.LOGITS, f, [1, d["vocab"]]),
        *[helper.make_tensor_value_info(n, f, cache) for n in presents],
    ]
    graph = helper.make_graph(g.nodes, "qwen2_decoder_fused", inputs, outputs, g.inits)
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)],
        producer_name="segzero-edge",
    )


def export_fused_decoder(model: PreTrainedModel, path: str | Path) -> Path:
    """Write the fused decoder.onnx (weights external past the size threshold). Returns the path."""
    proto = build_fused_decoder(model)
    weight_bytes = sum(t.ByteSize() for t in proto.graph.initializer)
    return save_onnx(proto, path, external_data=needs_external_data(weight_bytes))
