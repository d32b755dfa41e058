"""Export the reasoner's text side: `embed.onnx` (token embedding) and `decoder.onnx` (a
KV-cache decoder step with M-RoPE). Names and shapes: `segzero_edge.graphs.reasoner_text_io`.

The decoder wrapper re-states the Qwen2 decoder layer around HF's own modules (projections,
RMSNorm, MLP, the M-RoPE rotary module and `apply_rotary_pos_emb`), because HF's forward
builds a `DynamicCache` and an implicit mask that do not export: here the cache is flat
per-layer tensors and the mask is explicit. Parity is checked against HF `generate`
(`export.verify_reasoner`), since this wrapper is our code.

Attention attends to the cache and to the new tokens in two blocks (no concat): the runtime
owns preallocated cache buffers and writes the returned new keys/values into them in place.
GQA is handled by broadcasting queries grouped per kv head, never by repeating the cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from segzero_edge.export.onnx_io import load_onnx, needs_external_data, save_onnx, save_program
from segzero_edge.export.precision import PrecisionPolicy
from segzero_edge.export.reasoner_decoder_fused import ROPE_NODES
from segzero_edge.graphs import reasoner_text_io as io

if TYPE_CHECKING:
    from transformers import PreTrainedModel

OPSET = 21

#: The text graphs' precision policy (embed.onnx, decoder.onnx).
#: - fp16: float16 weights, activations and KV cache; Softmax and the RMSNorm chain stay float32
#:   (squares overflow fp16; the decoder's only float Div is RMSNorm's x / sqrt(mean(x²) + eps)),
#:   and `logits` stays float32 for the sampler.
#: - int8: constant-weight MatMuls (lm_head included; attention's activation x activation MatMuls
#:   stay float) with per-channel scales, and the embedding table (int8 + DequantizeLinear after
#:   the Gather); no pre-processing: MatMul/Gather weights are constants with static shapes already.
#: - int4: weight-only blockwise 4-bit for every constant-weight MatMul (`MatMulNBits`) and the
#:   embedding table (`GatherBlockQuantized`).
#: The fused decoder's rotary tables (`reasoner_decoder_fused.ROPE_NODES`) stay float32 too.
PRECISION_POLICY = PrecisionPolicy(
    fp16_keep_fp32_ops=("Softmax", "Pow", "ReduceMean", "Sqrt", "Div"),
    fp16_keep_fp32_nodes=ROPE_NODES,
    fp16_keep_fp32_io=(io.LOGITS,),
    int8_ops=("MatMul", "Gather"),
    int8_per_channel=True,
    int8_prepare=False,
    int4_ops=("MatMul", "Gather"),
)


def text_parts(model: PreTrainedModel) -> tuple[nn.Module, nn.Module]:
    """(language model, lm_head) of a Qwen2(.5)-VL ForConditionalGeneration model."""
    inner = getattr(model, "model", None)
    language_model = getattr(inner, "language_model", None)
    lm_head = getattr(model, "lm_head", None)
    if language_model is None or lm_head is None:
        raise TypeError(
            f"{type(model).__name__} is not a Qwen2(.5)-VL ForConditionalGeneration model "
            "(expected .model.language_model and .lm_head)"
        )
    return language_model, lm_head


class EmbedForExport(nn.Module):
    """input_ids [B, S] int64 -> inputs_embeds [B, S, H]."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.embed_tokens = text_parts(model)[0].embed_tokens

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)


class DecoderForExport(nn.Module):
    """One decoder step over flat per-layer caches (shapes in `reasoner_text_io`).

    forward(inputs_embeds [B,S,H], attention_mask [B,P+S] int64, position_ids [3,B,S] int64,
            *past (key, value) [B,kv,P,hd] per layer)
      -> (logits [B,V] of the last position, *new (key, value) [B,kv,S,hd] per layer)

    Written for a lean decode graph (a decode step runs ~40 small ops per layer, so op count
    matters on CPU): RMSNorm in the form onnxruntime fuses into SimplifiedLayerNormalization,
    rotate_half as one Gather with the sign folded into sin (bit-identical to HF's
    cat(-x2, x1) * sin), the attention bias built once per step, and the two attention blocks
    split with one Split. Projections that share an input are fused after export
    (`fuse_parallel_matmuls`).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        language_model, self.lm_head = text_parts(model)
        self.layers = language_model.layers
        self.norm = language_model.norm
        self.rotary_emb = language_model.rotary_emb
        cfg = language_model.config
        self.num_heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads  # what HF's attention uses
        self.scaling = self.head_dim**-0.5
        half = self.head_dim // 2
        # rotate_half(x) = cat(-x[half:], x[:half]) = x[perm] * sign
        self.register_buffer(
            "rot_perm", torch.cat([torch.arange(half, 2 * half), torch.arange(half)]), persistent=False
        )
        self.register_buffer("rot_sign", torch.cat([-torch.ones(half), torch.ones(half)]), persistent=False)

    @staticmethod
    def _rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """HF Qwen2RMSNorm (weight * x / sqrt(mean(x²) + eps)), float32 statistics."""
        dtype = x.dtype
        x32 = x.float()
        variance = x32.pow(2).mean(-1, keepdim=True)
        return norm.weight * (x32 / torch.sqrt(variance + norm.variance_epsilon)).to(dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
        """x [B,heads,S,hd] * cos + rotate_half(x) * sin, with sin_signed = sin * rot_sign
        (x[perm] * (sin * sign) is bit-identical to HF's cat(-x2, x1) * sin)."""
        return x * cos + x.index_select(-1, self.rot_perm) * sin_signed

    def _attention(
        self,
        attn: nn.Module,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        bias: torch.Tensor,
        past_k: torch.Tensor,
        past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        kv, rep, hd = self.kv_heads, self.num_heads // self.kv_heads, self.head_dim
        q = attn.q_proj(x).view(b, s, self.num_heads, hd).transpose(1, 2)  # [B,nh,S,hd]
        k = attn.k_proj(x).view(b, s, kv, hd).transpose(1, 2)  # [B,kv,S,hd]
        v = attn.v_proj(x).view(b, s, kv, hd).transpose(1, 2)
        cos, sin_signed, cos_q, sin_q = rope
        q = self._rope(q, cos_q, sin_q)  # carries the 1/sqrt(hd) attention scale
        k = self._rope(k, cos, sin_signed)
        # Query head h uses kv head h // rep (HF repeat_kv): group queries as [B,kv,rep*S,hd].
        qg = q.reshape(b, kv, rep * s, hd)
        scores_past = torch.matmul(qg, past_k.transpose(2, 3))  # [B,kv,rep*S,P]
        scores_new = torch.matmul(qg, k.transpose(2, 3))  # [B,kv,rep*S,S]
        scores = torch.cat([scores_past, scores_new], dim=-1) + bias
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        p = past_k.shape[2]
        probs_past, probs_new = probs.split([p, s], dim=-1)
        out = torch.matmul(probs_past, past_v) + torch.matmul(probs_new, v)  # [B,kv,rep*S,hd]
        out = out.reshape(b, self.num_heads, s, hd).transpose(1, 2).reshape(b, s, self.num_heads * hd)
        return attn.o_proj(out), k, v

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        b, s, _ = inputs_embeds.shape
        p = past[0].shape[2]
        dtype = inputs_embeds.dtype
        cos, sin = self.rotary_emb(inputs_embeds, position_ids)  # [B,S,hd], HF's M-RoPE sections
        cos, sin_signed = cos[:, None], (sin * self.rot_sign.to(sin.dtype))[:, None]  # [B,1,S,hd]
        # Queries take the attention scale through their rotary tables (one multiply per step,
        # not one per layer over the scores).
        rope = (cos, sin_signed, cos * self.scaling, sin_signed * self.scaling)
        # One additive bias [B,1,rep*S,P+S] for every layer: cache slots by attention_mask,
        # new tokens causally. finfo.min (not -inf) keeps padded query rows finite, so their
        # cache entries never turn NaN.
        rep = self.num_heads // self.kv_heads
        keep = attention_mask.bool()
        causal = torch.ones(s, s, dtype=torch.bool, device=keep.device).tril()
        keep_past = keep[:, None, :p].expand(b, s, p)
        keep_new = keep[:, None, p:] & causal[None]  # [B,S,S]
        keep_all = torch.cat([keep_past, keep_new], dim=-1)  # [B,S,P+S]
        keep_all = keep_all[:, None, None].expand(b, 1, rep, s, p + s).reshape(b, 1, rep * s, p + s)
        bias = torch.where(keep_all, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)
        hidden = inputs_embeds
        new_kv: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            h, k, v = self._attention(
                layer.self_attn,
                self._rms_norm(layer.input_layernorm, hidden),
                rope,
                bias,
                past[2 * i],
                past[2 * i + 1],
            )
            hidden = hidden + h
            hidden = hidden + layer.mlp(self._rms_norm(layer.post_attention_layernorm, hidden))
            new_kv += [k, v]
        # Only the last position's logits are needed. [B,1,H] (not [B,H]) keeps lm_head a MatMul
        # rather than a Gemm, so the weight-only int4 quantizer covers it.
        last = self._rms_norm(self.norm, hidden[:, -1:])
        return (self.lm_head(last)[:, 0].float(), *new_kv)


def text_dims(model: PreTrainedModel) -> dict[str, int]:
    """num_layers, kv_heads, head_dim, hidden, vocab of the language model."""
    cfg = text_parts(model)[0].config
    return {
        "num_layers": cfg.num_hidden_layers,
        "num_heads": cfg.num_attention_heads,
        "kv_heads": cfg.num_key_value_heads,
        "head_dim": cfg.hidden_size // cfg.num_attention_heads,
        "hidden": cfg.hidden_size,
        "vocab": cfg.vocab_size,
    }


def fuse_parallel_matmuls(model) -> int:
    """Merge MatMuls that share their input and have constant 2-D weights (q/k/v, gate/up)
    into one MatMul (+ one bias Add when each had a constant bias Add) and a Split.

    One bigger weight-streaming kernel instead of several small ones: fewer ops per decode
    step and better kernel efficiency, at every precision. Works in place on an
    `onnx.ModelProto`; returns the number of groups fused.
    """
    from collections import defaultdict

    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    outputs = {o.name for o in graph.output}
    groups: dict[str, list] = defaultdict(list)
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
            groups[node.input[0]].append(node)

    def bias_add(node):
        users = consumers[node.output[0]]
        if len(users) != 1 or node.output[0] in outputs or users[0].op_type != "Add":
            return None
        add = users[0]
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        t = inits.get(other)
        return add if t is not None and list(t.dims) == [inits[node.input[1]].dims[1]] else None

    replace: dict[int, list] = {}  # id(first node of a group) -> its replacement nodes
    removed: set[int] = set()
    for x, nodes in groups.items():
        if len(nodes) < 2:
            continue
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        adds = [bias_add(n) for n in nodes]
        with_bias = all(a is not None for a in adds)
        tag = f"{nodes[0].name or nodes[0].output[0]}_fused"
        weight = numpy_helper.from_array(np.concatenate(weights, axis=1), f"{tag}.weight")
        sizes = numpy_helper.from_array(np.array([w.shape[1] for w in weights], np.int64), f"{tag}.sizes")
        graph.initializer.extend([weight, sizes])
        new_nodes = [helper.make_node("MatMul", [x, weight.name], [f"{tag}.mm"], name=f"{tag}.MatMul")]
        split_in = f"{tag}.mm"
        if with_bias:
            biases = []
            for a, n in zip(adds, nodes, strict=True):
                other = a.input[1] if a.input[0] == n.output[0] else a.input[0]
                biases.append(numpy_helper.to_array(inits[other]))
            bias = numpy_helper.from_array(np.concatenate(biases), f"{tag}.bias")
            graph.initializer.append(bias)
            new_nodes.append(
                helper.make_node("Add", [split_in, bias.name], [f"{tag}.add"], name=f"{tag}.Add")
            )
            split_in = f"{tag}.add"
        split_outs = [a.output[0] for a in adds] if with_bias else [n.output[0] for n in nodes]
        new_nodes.append(
            helper.make_node("Split", [split_in, sizes.name], split_outs, name=f"{tag}.Split", axis=-1)
        )
        replace[id(nodes[0])] = new_nodes
        removed |= {id(n) for n in nodes} | ({id(a) for a in adds} if with_bias else set())
    if not replace:
        return 0
    kept = []
    for node in graph.node:  # one rebuild: protobuf copies messages on extend
        if id(node) in replace:
            kept += replace[id(node)]
        elif id(node) not in removed:
            kept.append(node)
    graph.ClearField("node")
    graph.node.extend(kept)
    used = {name for node in graph.node for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    graph.ClearField("initializer")
    graph.initializer.extend(keep)
    return len(replace)


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_shapes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    return save_program(program, path, external_data=needs_external_data(weight_bytes))


def _fuse_file(path: Path) -> None:
    model = load_onnx(path)
    if fuse_parallel_matmuls(model):
        save_onnx(model, path)


def export_embed(model: PreTrainedModel, path: str | Path) -> Path:
    """Write embed.onnx: input_ids [B,S] -> inputs_embeds [B,S,H]. Returns the path."""
    wrapper = EmbedForExport(model).eval()
    ids = torch.zeros(1, 5, dtype=torch.long)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=1, max=65536)
    return _export(
        wrapper, (ids,), Path(path), [io.EMBED_INPUT], [io.EMBED_OUTPUT], {"input_ids": {0: batch, 1: seq}}
    )


def decoder_example(
    model: PreTrainedModel, batch: int = 1, seq: int = 3, past: int = 4
) -> tuple[torch.Tensor, ...]:
    """Example decoder inputs (float32): embeds, mask, position ids, and `past` zeroed cache slots."""
    d = text_dims(model)
    dtype = text_parts(model)[1].weight.dtype
    embeds = torch.randn(batch, seq, d["hidden"], dtype=dtype)
    mask = torch.ones(batch, past + seq, dtype=torch.long)
    positions = torch.arange(past, past + seq).view(1, 1, -1).expand(3, batch, seq).contiguous()
    cache = [
        torch.zeros(batch, d["kv_heads"], past, d["head_dim"], dtype=dtype)
        for _ in range(2 * d["num_layers"])
    ]
    return (embeds, mask, positions, *cache)


def export_decoder(model: PreTrainedModel, path: str | Path, layout: str = "fused") -> Path:
    """Write decoder.onnx (one cached decoder step) in KV `layout` (`reasoner_text_io.KV_LAYOUTS`):
    "fused" (contrib ops, batch 1, shared cache: `reasoner_decoder_fused`) or "portable" (standard
    ops, dynamic batch/seq/past: `DecoderForExport`). Returns the path."""
    if layout not in io.KV_LAYOUTS:
        raise ValueError(f"layout must be one of {io.KV_LAYOUTS}, got {layout!r}")
    if layout == "fused":
        from segzero_edge.export.reasoner_decoder_fused import export_fused_decoder

        return export_fused_decoder(model, path)
    wrapper = DecoderForExport(model).eval()
    d = text_dims(model)
    args = decoder_example(model)
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("seq", min=1, max=65536)
    past = torch.export.Dim("past", min=1, max=131072)
    names = io.decoder_input_names(d["num_layers"])
    dyn: dict[str, dict[int, object]] = {
        io.INPUTS_EMBEDS: {0: batch, 1: seq},
        io.ATTENTION_MASK: {0: batch, 1: torch.export.Dim.AUTO},  # = past + seq
        io.POSITION_IDS: {1: batch, 2: seq},
    }
    # forward(*past) takes a tuple: dynamic_shapes mirrors the signature (name -> spec, past -> tuple).
    spec = (
        dyn[io.INPUTS_EMBEDS],
        dyn[io.ATTENTION_MASK],
        dyn[io.POSITION_IDS],
        tuple({0: batch, 2: past} for _ in range(2 * d["num_layers"])),
    )
    path = _export(wrapper, args, Path(path), names, io.decoder_output_names(d["num_layers"], "portable"), spec)
    _fuse_file(path)
    return path
