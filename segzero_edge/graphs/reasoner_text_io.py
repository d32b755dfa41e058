"""Input/output names of the reasoner's text graphs (`embed.onnx`, `decoder.onnx`).

Defined once, shared by the exporter (`segzero_edge.export.reasoner_text`) and the runtime
(`segzero_edge.runtime.decoder`), so the two can never drift apart.

embed.onnx
    input_ids [B, S] int64 -> inputs_embeds [B, S, H]

    Image features are *not* part of this graph: the runtime scatters the vision graph's
    output rows into the rows where input_ids == <|image_pad|> (numpy, one fancy-index
    assignment), exactly what transformers' `masked_scatter` does.

decoder.onnx (one step: prefill with S = prompt length, decode with S = 1)
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

The cache belongs to the runtime: it preallocates [B, kv_heads, capacity, head_dim] buffers,
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


def past_names(num_layers: int) -> list[str]:
    """`past_key_values.{i}.key`, `past_key_values.{i}.value` for i in range(num_layers), interleaved."""
    return [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def new_kv_names(num_layers: int) -> list[str]:
    """`new_key_values.{i}.key`, `new_key_values.{i}.value` for i in range(num_layers), interleaved."""
    return [f"new_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]


def decoder_input_names(num_layers: int) -> list[str]:
    return [INPUTS_EMBEDS, ATTENTION_MASK, POSITION_IDS, *past_names(num_layers)]


def decoder_output_names(num_layers: int) -> list[str]:
    return [LOGITS, *new_kv_names(num_layers)]
