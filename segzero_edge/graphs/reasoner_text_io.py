"""Input/output names of the reasoner's text graphs (`embed.onnx`, `decoder.onnx`).

Defined once, shared by the exporter (`segzero_edge.export.reasoner_text`) and the runtime
(`segzero_edge.runtime.decoder`), so the two can never drift apart.

embed.onnx
    input_ids [B, S] int64 -> inputs_embeds [B, S, H]

    Image features are *not* part of this graph: the runtime scatters the vision graph's
    output rows into the rows where input_ids == <|image_pad|> (numpy, one fancy-index
    assignment), exactly what transformers' `masked_scatter` does.

decoder.onnx comes in two KV layouts (`KV_LAYOUTS`), told apart by its output names
(`kv_layout`):

"fused" (the default export): ONNX Runtime contrib ops (GroupQueryAttention,
SkipSimplifiedLayerNormalization), batch 1, and a cache shared between input and output.
    inputs_embeds                 [1, S, H]           float
    attention_mask                [1, T]              int64, all ones, T = past + S
    position_ids                  [3, 1, S]           int64, M-RoPE
    past_key_values.{i}.key       [1, kv_heads, C, head_dim]  a buffer of capacity C >= T
    past_key_values.{i}.value     [1, kv_heads, C, head_dim]
  ->
    logits                        [1, V]              float32, the last position
    present_key_values.{i}.key    [1, kv_heads, C, head_dim]  the SAME buffer as past_*: the
    present_key_values.{i}.value  [1, kv_heads, C, head_dim]  runtime binds one device buffer
                                                      to both (I/O binding) and the graph writes
                                                      the S new keys/values at slots [T-S, T)

"portable" (standard ONNX ops only, for runtimes without onnxruntime's contrib ops, and the
layout of engines exported before the fused graph):
    inputs_embeds                 [B, S, H]           float
    attention_mask                [B, P + S]          int64, 1 = attend; the first P entries
                                                      cover the cache slots, the last S the new tokens
    position_ids                  [3, B, S]           int64, M-RoPE (temporal, height, width)
    past_key_values.{i}.key       [B, kv_heads, P, head_dim]  per layer i
    past_key_values.{i}.value     [B, kv_heads, P, head_dim]
  ->
    logits                        [B, V]              float32, the LAST input position only
                                                      (a [B, S, V] prefill tensor is 600 MB at
                                                      S=1051, V=151936, and only the last row is used)
    new_key_values.{i}.key        [B, kv_heads, S, head_dim]  keys of the S new tokens only
    new_key_values.{i}.value      [B, kv_heads, S, head_dim]

Portable cache: the runtime preallocates [B, kv_heads, capacity, head_dim] buffers,
passes them whole as `past_key_values.*` (unwritten slots masked by attention_mask = 0) and
writes each step's `new_key_values.*` into the next S slots in place. The graph attends to
past and new keys in two blocks and never concatenates them, so no step copies the cache.
"""

from __future__ import annotations

EMBED_INPUT = "input_ids"
EMBED_OUTPUT = "inputs_embeds"

INPUTS_EMBEDS = "inputs_embeds"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"

#: decoder.onnx KV layouts (see above).
KV_LAYOUTS = ("fused", "portable")


def present_names(num_layers: int) -> list[str]:
    """`present_key_values.{i}.key`, `present_key_values.{i}.value` (fused layout), interleaved."""
    return [f"present_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def past_names(num_layers: int) -> list[str]:
    """`past_key_values.{i}.key`, `past_key_values.{i}.value` for i in range(num_layers), interleaved."""
    return [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def new_kv_names(num_layers: int) -> list[str]:
    """`new_key_values.{i}.key`, `new_key_values.{i}.value` for i in range(num_layers), interleaved."""
    return [f"new_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def decoder_input_names(num_layers: int) -> list[str]:
    return [INPUTS_EMBEDS, ATTENTION_MASK, POSITION_IDS, *past_names(num_layers)]


def decoder_output_names(num_layers: int, layout: str = "fused") -> list[str]:
    if layout not in KV_LAYOUTS:
        raise ValueError(f"kv layout must be one of {KV_LAYOUTS}, got {layout!r}")
    return [LOGITS, *(present_names if layout == "fused" else new_kv_names)(num_layers)]


def kv_layout(output_names: list[str], num_layers: int) -> str:
    """The layout whose outputs are `output_names`; ValueError naming both contracts otherwise."""
    for layout in KV_LAYOUTS:
        if list(output_names) == decoder_output_names(num_layers, layout):
            return layout
    raise ValueError(
        f"decoder.onnx outputs {list(output_names)[:3]}... match no {num_layers}-layer decoder layout "
        f"(fused: {decoder_output_names(num_layers, 'fused')[:3]}..., portable: "
        f"{decoder_output_names(num_layers, 'portable')[:3]}...): re-export the engine with this package"
    )
