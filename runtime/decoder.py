"""Torch-free KV-cache decode loop over `decoder.onnx`, with HF-identical logits processing.

Cache: per layer, preallocated [B, kv_heads, capacity, head_dim] key and value buffers. Each
step passes the buffers whole as `past_key_values.*` (zero-copy: ORT reads numpy memory on
CPU) with attention_mask 0 on unwritten slots, then writes the step's `new_key_values.*` into
the next slots in place. Capacity grows in `chunk`-token steps, so a step reads fewer than
`chunk` masked slots more than it needs, and the cache is copied only when it grows (every
`chunk` tokens, a few % of the weight traffic), never the O(length) per step of a
concat-based cache.

Logits processing follows transformers' generate exactly, in its order: repetition penalty
over the prompt and generated ids, then temperature, then top-p; greedy is argmax (first index
on ties, like torch.argmax). Sampling uses a seeded numpy Generator, so it is reproducible
run to run, but it does not draw the same tokens as torch's sampler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from segzero_edge.generation import GenerationConfig
from segzero_edge.graphs import reasoner_text_io as io

OnToken = Callable[[int], None]


def repetition_penalty(logits: np.ndarray, seen_ids: np.ndarray, penalty: float) -> np.ndarray:
    """HF RepetitionPenaltyLogitsProcessor for one row: logits [V] float32, seen_ids [N] (any ids,
    repeats allowed; ids >= V are ignored). Returns a new array."""
    if penalty == 1.0:
        return logits
    out = logits.copy()
    ids = np.unique(seen_ids[seen_ids < logits.shape[0]])
    score = out[ids]
    out[ids] = np.where(score < 0, score * np.float32(penalty), score / np.float32(penalty))
    return out


def top_p_filter(logits: np.ndarray, top_p: float) -> np.ndarray:
    """HF TopPLogitsWarper for one row (min_tokens_to_keep=1): -inf outside the nucleus."""
    if top_p >= 1.0:
        return logits
    order = np.argsort(logits, kind="stable")  # ascending, as HF sorts
    sorted_logits = logits[order]
    probs = np.exp(sorted_logits - sorted_logits[-1])
    cumulative = np.cumsum(probs / probs.sum())
    remove = cumulative <= (1.0 - top_p)
    remove[-1] = False
    out = logits.copy()
    out[order[remove]] = -np.inf
    return out


def choose_token(
    logits: np.ndarray, config: GenerationConfig, seen_ids: np.ndarray, rng: np.random.Generator | None
) -> int:
    """Pick the next token from the last position's logits [V] (float32)."""
    logits = repetition_penalty(
        logits.astype(np.float32, copy=False), seen_ids, config.repetition_penalty or 1.0
    )
    if config.greedy:
        return int(np.argmax(logits))
    if rng is None:
        raise ValueError("sampling (temperature > 0) needs a numpy Generator")
    logits = top_p_filter(logits / np.float32(config.temperature), config.top_p)
    probs = np.exp(logits - logits.max()).astype(np.float64)
    probs /= probs.sum()
    return int(rng.choice(probs.shape[0], p=probs))


class KVCache:
    """Preallocated per-layer key/value buffers [B, kv_heads, capacity, head_dim] plus the
    valid-slot mask [B, capacity] (int64, 1 = written)."""

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


@dataclass
class DecodeResult:
    """Generated ids (including the stop token when one was produced) and stage timings."""

    ids: list[int]
    prefill_ms: float
    decode_ms: float
    stopped: bool  # True when a stop id ended generation (False: max_new_tokens)


def _shrinking_run_options():
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


class TextDecoder:
    """Runs `embed.onnx` and `decoder.onnx` sessions (onnxruntime.InferenceSession)."""

    def __init__(
        self,
        embed_session,
        decoder_session,
        *,
        num_layers: int,
        kv_heads: int,
        head_dim: int,
        chunk: int = 64,
    ) -> None:
        self.embed_session, self.decoder_session = embed_session, decoder_session
        self.num_layers, self.kv_heads, self.head_dim, self.chunk = num_layers, kv_heads, head_dim, chunk
        types = {i.name: i.type for i in decoder_session.get_inputs()}
        expected = io.decoder_input_names(num_layers)
        if sorted(types) != sorted(expected):
            raise ValueError(
                f"decoder.onnx inputs {sorted(types)} do not match a {num_layers}-layer decoder "
                f"({expected[:3]} + past_key_values.*): re-export the engine with this package"
            )
        self.dtype = np.float16 if types[io.INPUTS_EMBEDS] == "tensor(float16)" else np.float32
        self._outputs = io.decoder_output_names(num_layers)
        self._check_dims(decoder_session, embed_session)
        self._shrink_after = _shrinking_run_options()


    def _check_dims(self, decoder_session, embed_session) -> None:
        """Refuse dims that disagree with the graphs' static shapes (a manifest that does not
        describe these graphs would only fail later, mid-generation, with a shape error)."""
        shapes = {i.name: i.shape for i in decoder_session.get_inputs()}
        want = {1: self.kv_heads, 3: self.head_dim}
        for name in io.past_names(self.num_layers):
            shape = shapes[name]
            for axis, value in want.items():
                if len(shape) != 4 or (isinstance(shape[axis], int) and shape[axis] != value):
                    raise ValueError(
                        f"decoder.onnx input {name} has shape {shape}, but the manifest gives kv_heads="
                        f"{self.kv_heads}, head_dim={self.head_dim}: the manifest does not describe this graph"
                    )
        hidden = shapes[io.INPUTS_EMBEDS][-1]
        embed_out = {o.name: o.shape for o in embed_session.get_outputs()}
        if io.EMBED_OUTPUT not in embed_out:
            raise ValueError(f"embed.onnx has outputs {sorted(embed_out)}, expected {io.EMBED_OUTPUT!r}")
        embed_hidden = embed_out[io.EMBED_OUTPUT][-1]
        if isinstance(hidden, int) and isinstance(embed_hidden, int) and hidden != embed_hidden:
            raise ValueError(f"embed.onnx gives width {embed_hidden}, decoder.onnx takes {hidden}: mixed exports")
        self.hidden = hidden if isinstance(hidden, int) else None

    def new_cache(self, capacity: int) -> KVCache:
        capacity = max(self.chunk, -(-capacity // self.chunk) * self.chunk)
        return KVCache(
            self.num_layers,
            self.kv_heads,
            self.head_dim,
            capacity=capacity,
            chunk=self.chunk,
            dtype=self.dtype,
        )

    def embed(self, input_ids: np.ndarray) -> np.ndarray:
        """input_ids [B, S] int64 -> inputs_embeds [B, S, H] (the decoder's float type)."""
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        return self.embed_session.run([io.EMBED_OUTPUT], {io.EMBED_INPUT: ids})[0]

    def forward(self, cache: KVCache, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One decoder step: inputs_embeds [B, S, H], position_ids [3, B, S] -> last-position
        logits [B, V] float32; the S new keys/values are appended to `cache`.

        The step reads the cache as it is (the new tokens are attended in their own block), so
        a prefill over an empty cache reads only its `chunk` masked slots; the cache grows after.
        """
        s = inputs_embeds.shape[1]
        feeds = dict(zip(cache.names, cache.buffers, strict=True))
        feeds[io.INPUTS_EMBEDS] = np.ascontiguousarray(inputs_embeds, dtype=self.dtype)
        feeds[io.ATTENTION_MASK] = np.concatenate([cache.mask, np.ones((cache.batch, s), np.int64)], axis=1)
        feeds[io.POSITION_IDS] = np.ascontiguousarray(position_ids, dtype=np.int64)
        out = self.decoder_session.run(self._outputs, feeds, self._shrink_after if s > 1 else None)
        cache.append(out[1:])
        return out[0]

    def generate(
        self,
        inputs_embeds: np.ndarray,
        position_ids: np.ndarray,
        prompt_ids: np.ndarray,
        *,
        rope_delta: int,
        config: GenerationConfig,
        stop_ids: set[int] | frozenset[int],
        on_token: OnToken | None = None,
        prefill_start: float | None = None,
    ) -> DecodeResult:
        """Prefill [1, S, H] then decode until a stop id or `config.max_new_tokens`.

        position_ids [3, 1, S] are the prompt's M-RoPE positions; new token n (0-based) gets
        text position S + n + rope_delta on all three axes, as HF computes it from rope_deltas.
        `prompt_ids` [S] feed the repetition penalty. `prefill_start` (perf_counter) lets the
        caller count its own embedding work as prefill time.
        """
        if inputs_embeds.shape[0] != 1:
            raise ValueError(f"generate runs batch 1, got inputs_embeds {inputs_embeds.shape}")
        start = time.perf_counter() if prefill_start is None else prefill_start
        rng = None if config.greedy else np.random.default_rng(config.seed)
        s = inputs_embeds.shape[1]
        cache = self.new_cache(self.chunk)
        seen = np.empty(s + config.max_new_tokens, np.int64)
        seen[:s] = prompt_ids
        logits = self.forward(cache, inputs_embeds, position_ids)[0]
        token = choose_token(logits, config, seen[:s], rng)
        prefill_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        ids = [token]
        if on_token is not None:
            on_token(token)
        stopped = token in stop_ids
        while not stopped and len(ids) < config.max_new_tokens:
            seen[s + len(ids) - 1] = token
            position = s + len(ids) - 1 + rope_delta
            embeds = self.embed(np.array([[token]], np.int64))
            logits = self.forward(cache, embeds, np.full((3, 1, 1), position, np.int64))[0]
            token = choose_token(logits, config, seen[: s + len(ids)], rng)
            ids.append(token)
            if on_token is not None:
                on_token(token)
            stopped = token in stop_ids
        return DecodeResult(ids, prefill_ms, (time.perf_counter() - start) * 1000.0, stopped)

    def teacher_forced(
        self,
        inputs_embeds: np.ndarray,
        position_ids: np.ndarray,
        ids: list[int] | np.ndarray,
        *,
        rope_delta: int,
    ) -> np.ndarray:
        """Logits [len(ids), V] float32: row n is what the model predicts for ids[n] after the
        prompt and ids[:n] (the reference tokens are fed, whatever the model would have picked)."""
        s = inputs_embeds.shape[1]
        cache = self.new_cache(self.chunk)
        rows = [self.forward(cache, inputs_embeds, position_ids)[0]]
        for n, token in enumerate(list(ids)[:-1]):
            embeds = self.embed(np.array([[int(token)]], np.int64))
            rows.append(self.forward(cache, embeds, np.full((3, 1, 1), s + n + rope_delta, np.int64))[0])
        return np.stack(rows).astype(np.float32, copy=False)
