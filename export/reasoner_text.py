"""Export the reasoner's text side: `embed.onnx` (token embedding) and `decoder.onnx` (a
KV-cache decoder step with M-RoPE). Names and shapes: `segzero_edge.runtime.reasoner_text_io`.

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

from segzero_edge.runtime import reasoner_text_io as io

if TYPE_CHECKING:
    from transformers import PreTrainedModel

OPSET = 21


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
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb

        self._rope = apply_rotary_pos_emb

    def _attention(
        self,
        attn: nn.Module,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias_past: torch.Tensor,
        bias_new: torch.Tensor,
        past_k: torch.Tensor,
        past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        kv, rep, hd = self.kv_heads, self.num_heads // self.kv_heads, self.head_dim
        q = attn.q_proj(x).view(b, s, self.num_heads, hd).transpose(1, 2)  # [B,nh,S,hd]
        k = attn.k_proj(x).view(b, s, kv, hd).transpose(1, 2)  # [B,kv,S,hd]
        v = attn.v_proj(x).view(b, s, kv, hd).transpose(1, 2)
        q, k = self._rope(q, k, cos, sin)
        # Query head h uses kv head h // rep (HF repeat_kv): group queries as [B,kv,rep*S,hd].
        qg = q.reshape(b, kv, rep * s, hd)
        scores_past = torch.matmul(qg, past_k.transpose(2, 3)) * self.scaling  # [B,kv,rep*S,P]
        scores_new = torch.matmul(qg, k.transpose(2, 3)) * self.scaling  # [B,kv,rep*S,S]
        scores = torch.cat([scores_past + bias_past, scores_new + bias_new], dim=-1)
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        p = past_k.shape[2]
        out = torch.matmul(probs[..., :p], past_v) + torch.matmul(probs[..., p:], v)  # [B,kv,rep*S,hd]
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
        # Additive biases, broadcast over [B,kv,rep*S,*]. finfo.min (not -inf) keeps padded
        # query rows finite, so their cache entries never turn NaN.
        neg = torch.finfo(dtype).min
        keep = attention_mask.bool()
        zero = torch.zeros((), dtype=dtype)
        bias_past = torch.where(keep[:, None, None, :p], zero, neg)  # [B,1,1,P]
        causal = torch.ones(s, s, dtype=torch.bool, device=keep.device).tril()
        keep_new = keep[:, None, p:] & causal[None]  # [B,S,S]
        rep = self.num_heads // self.kv_heads
        keep_new = keep_new[:, None, None].expand(b, 1, rep, s, s).reshape(b, 1, rep * s, s)
        bias_new = torch.where(keep_new, zero, neg)
        hidden = inputs_embeds
        new_kv: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            residual = hidden
            h = layer.input_layernorm(hidden)
            h, k, v = self._attention(
                layer.self_attn, h, cos, sin, bias_past, bias_new, past[2 * i], past[2 * i + 1]
            )
            hidden = residual + h
            residual = hidden
            hidden = residual + layer.mlp(layer.post_attention_layernorm(hidden))
            new_kv += [k, v]
        # Only the last position's logits are needed. [B,1,H] (not [B,H]) keeps lm_head a MatMul
        # rather than a Gemm, so the weight-only int4 quantizer covers it.
        last = self.norm(hidden[:, -1:])
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
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned no program for {path.name}")
    # Always external data for big models; small graphs stay in one file.
    program.save(str(path), external_data=_needs_external(module))
    return path


def _needs_external(module: nn.Module) -> bool:
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    return size > 1.8 * 2**30  # protobuf's 2 GiB limit


def export_embed(model: PreTrainedModel, path: str | Path) -> Path:
    """Write embed.onnx: input_ids [B,S] -> inputs_embeds [B,S,H]. Returns the path."""
    wrapper = EmbedForExport(model).eval()
    ids = torch.zeros(1, 5, dtype=torch.long)
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=1, max=65536)
    return _export(
        wrapper, (ids,), Path(path), [io.EMBED_INPUT], [io.EMBED_OUTPUT], {"input_ids": {0: batch, 1: seq}}
    )


def decoder_example(model: PreTrainedModel, batch: int = 1, seq: int = 3, past: int = 4) -> tuple[torch.Tensor, ...]:
    """Example decoder inputs (float32): embeds, mask, position ids, and `past` zeroed cache slots."""
    d = text_dims(model)
    dtype = text_parts(model)[1].weight.dtype
    embeds = torch.randn(batch, seq, d["hidden"], dtype=dtype)
    mask = torch.ones(batch, past + seq, dtype=torch.long)
    positions = torch.arange(past, past + seq).view(1, 1, -1).expand(3, batch, seq).contiguous()
    cache = [torch.zeros(batch, d["kv_heads"], past, d["head_dim"], dtype=dtype) for _ in range(2 * d["num_layers"])]
    return (embeds, mask, positions, *cache)


def export_decoder(model: PreTrainedModel, path: str | Path) -> Path:
    """Write decoder.onnx (one cached decoder step, dynamic batch/seq/past). Returns the path."""
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
    return _export(wrapper, args, Path(path), names, io.decoder_output_names(d["num_layers"]), spec)
