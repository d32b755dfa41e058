"""One generation's decoder steps, for each KV layout of `decoder.onnx` (`reasoner_text_io`).

`TextDecoder.generate` writes the loop once (logits processing, stopping, streaming); a steps
object runs the graphs for it: `prefill(inputs_embeds, position_ids)` and `step(token,
position)`, each returning the last position's logits [V] float32 in host memory.

- `BoundSteps` (fused layout): ONNX Runtime I/O binding. The KV buffers are allocated once
  per generation on the execution device, at the exact capacity the generation needs (prompt
  + max_new_tokens), and bound as both `past_key_values.*` and `present_key_values.*`: the
  graph's GroupQueryAttention writes each step's keys/values into them in place. The token's
  embedding goes from the embed graph's output to the decoder's input on the device. What
  crosses to and from the host per step: the token id, the position, the all-ones attention
  mask (a few bytes each) and the logits. On CPU it is the same code path, with the device
  being host memory.
- `HostSteps` (portable layout, engines exported before the fused graph): today's host loop.
  numpy KV buffers that grow in chunks, read in place by the graph (zero copy on CPU) and
  written from each step's `new_key_values.*`. On a GPU it uploads the cache at every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segzero_edge.graphs import reasoner_text_io as io


class KVCache:
    """Preallocated per-layer key/value buffers [B, kv_heads, capacity, head_dim] plus the
    valid-slot mask [B, capacity] (int64, 1 = written). Portable layout."""

    def __init__(
        self,
        num_layers: int,
        kv_heads: int,
        head_dim: int,
        *,
        batch: int = 1,
        capacity: int = 256,
        chunk: int = 64,
        dtype: type = np.float32,
    ) -> None:
        if capacity < 1 or chunk < 1:
            raise ValueError(f"capacity and chunk must be >= 1, got {capacity}, {chunk}")
        self.num_layers, self.kv_heads, self.head_dim, self.batch = num_layers, kv_heads, head_dim, batch
        self.chunk, self.dtype = chunk, dtype
        self.length = 0
        self.names = io.past_names(num_layers)
        self.buffers = [np.zeros((batch, kv_heads, capacity, head_dim), dtype) for _ in self.names]
        self.mask = np.zeros((batch, capacity), np.int64)

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def reserve(self, extra: int) -> None:
        """Make room for `extra` more tokens (grow to a multiple of `chunk`, copying once)."""
        need = self.length + extra
        if need <= self.capacity:
            return
        capacity = -(-need // self.chunk) * self.chunk
        grown = []
        for buf in self.buffers:
            new = np.zeros((*buf.shape[:2], capacity, buf.shape[3]), buf.dtype)
            new[:, :, : self.length] = buf[:, :, : self.length]
            grown.append(new)
        self.buffers = grown
        mask = np.zeros((self.batch, capacity), np.int64)
        mask[:, : self.length] = self.mask[:, : self.length]
        self.mask = mask

    def append(self, new: list[np.ndarray]) -> None:
        """Write one step's new keys/values ([B, kv, S, hd] each, in `names` order) in place,
        growing the buffers first when they are full."""
        s = new[0].shape[2]
        self.reserve(s)
        for buf, values in zip(self.buffers, new, strict=True):
            buf[:, :, self.length : self.length + s] = values
        self.mask[:, self.length : self.length + s] = 1
        self.length += s


def shrinking_run_options():
    """RunOptions that hand the CPU arena's free chunks back after a run. Used for prefill
    only: its activations grow with the prompt, and onnxruntime's arena would otherwise keep
    the largest prompt's memory for the life of the session (decode steps are small and
    frequent, so they keep the arena). None when onnxruntime is absent (fake sessions)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def session_device(session: Any) -> tuple[str, int]:
    """(OrtValue device type, device id) where `session` runs: ("cuda", id) for the CUDA and
    TensorRT providers, ("cpu", 0) otherwise."""
    provider = session.get_providers()[0]
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        options = session.get_provider_options().get(provider, {})
        return "cuda", int(options.get("device_id", 0))
    return "cpu", 0


class HostSteps:
    """Portable layout: numpy cache, `session.run` per step (see the module docstring)."""

    def __init__(self, text, capacity: int) -> None:
        self.text = text
        self.cache = text.new_cache(text.chunk)  # grows as it fills: the prompt may be long
        del capacity

    def _run(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        cache, text = self.cache, self.text
        s = inputs_embeds.shape[1]
        feeds = dict(zip(cache.names, cache.buffers, strict=True))
        feeds[io.INPUTS_EMBEDS] = np.ascontiguousarray(inputs_embeds, dtype=text.dtype)
        feeds[io.ATTENTION_MASK] = np.concatenate([cache.mask, np.ones((cache.batch, s), np.int64)], axis=1)
        feeds[io.POSITION_IDS] = np.ascontiguousarray(position_ids, dtype=np.int64)
        out = text.decoder_session.run(text.output_names, feeds, text.shrink_after if s > 1 else None)
        cache.append(out[1:])
        return out[0][0]

    def prefill(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        return self._run(inputs_embeds, position_ids)

    def step(self, token: int, position: int) -> np.ndarray:
        embeds = self.text.embed(np.array([[token]], np.int64))
        return self._run(embeds, np.full((3, 1, 1), position, np.int64))


class BoundSteps:
    """Fused layout: device-resident cache through I/O binding (see the module docstring)."""

    def __init__(self, text, capacity: int) -> None:
        from onnxruntime import OrtValue

        self.text = text
        device, device_id = session_device(text.decoder_session)
        shape = [1, text.kv_heads, capacity, text.head_dim]
        self.capacity, self.length = capacity, 0
        # One buffer per layer and kind, bound as past AND present: GroupQueryAttention writes the
        # new keys/values in place. Uninitialised: slots past the written length are never read.
        self.kv = [OrtValue.ortvalue_from_shape_and_type(shape, text.dtype, device, device_id) for _ in text.past]
        self.binding = text.decoder_session.io_binding()
        for past, present, value in zip(text.past, text.output_names[1:], self.kv, strict=True):
            self.binding.bind_ortvalue_input(past, value)
            self.binding.bind_ortvalue_output(present, value)
        # logits land in this host array (on CPU the OrtValue wraps it; on a GPU ORT copies into it)
        self.logits = np.empty((1, text.vocab), np.float32)
        self.binding.bind_ortvalue_output(io.LOGITS, OrtValue.ortvalue_from_numpy(self.logits))
        # a decode step's embedding stays on the device, from embed.onnx's output to the decoder
        self.embeds = OrtValue.ortvalue_from_shape_and_type([1, 1, text.hidden], text.dtype, device, device_id)
        self.embed_binding = text.embed_session.io_binding()
        self.embed_binding.bind_ortvalue_output(io.EMBED_OUTPUT, self.embeds)
        self.ones = np.ones((1, capacity), np.int64)

    def _run(self, s: int, position_ids: np.ndarray) -> np.ndarray:
        total = self.length + s
        if total > self.capacity:
            raise ValueError(f"the generation needs {total} cache slots, {self.capacity} were allocated")
        self.binding.bind_cpu_input(io.ATTENTION_MASK, self.ones[:, :total])
        self.binding.bind_cpu_input(io.POSITION_IDS, np.ascontiguousarray(position_ids, dtype=np.int64))
        options = self.text.shrink_after if s > 1 else None
        self.text.decoder_session.run_with_iobinding(self.binding, options)
        self.length = total
        return self.logits[0]

    def prefill(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        if inputs_embeds.shape[0] != 1:
            raise ValueError(f"the fused decoder runs batch 1, got inputs_embeds {inputs_embeds.shape}")
        embeds = np.ascontiguousarray(inputs_embeds, dtype=self.text.dtype)
        self.binding.bind_cpu_input(io.INPUTS_EMBEDS, embeds)
        return self._run(embeds.shape[1], position_ids)

    def step(self, token: int, position: int) -> np.ndarray:
        self.embed_binding.bind_cpu_input(io.EMBED_INPUT, np.array([[token]], np.int64))
        self.text.embed_session.run_with_iobinding(self.embed_binding)
        self.binding.bind_ortvalue_input(io.INPUTS_EMBEDS, self.embeds)
        return self._run(1, np.full((3, 1, 1), position, np.int64))
