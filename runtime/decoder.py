"""Torch-free KV-cache decode loop over `decoder.onnx`, with HF-identical logits processing.

The loop is written once here; how each step runs the graphs depends on the decoder's KV
layout (`runtime.decode_steps`): the fused layout keeps the cache on the execution device
through I/O binding (GroupQueryAttention appends in place), the portable layout keeps numpy
buffers that the graph reads in place and that grow in `chunk`-token steps. Neither copies the
cache per step.

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
from segzero_edge.runtime.decode_steps import BoundSteps, HostSteps, KVCache, shrinking_run_options

__all__ = ["DecodeResult", "GenerationConfig", "KVCache", "TextDecoder", "choose_token", "repetition_penalty", "top_p_filter"]

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


@dataclass
class DecodeResult:
    """Generated ids (including the stop token when one was produced) and stage timings."""

    ids: list[int]
    prefill_ms: float
    decode_ms: float
    stopped: bool  # True when a stop id ended generation (False: max_new_tokens)


class TextDecoder:
    """Runs `embed.onnx` and `decoder.onnx` sessions (onnxruntime.InferenceSession); the
    decoder's KV layout is read from its output names (`reasoner_text_io.kv_layout`)."""

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
        outputs = decoder_session.get_outputs()
        self.layout = io.kv_layout([o.name for o in outputs], num_layers)
        self.output_names = io.decoder_output_names(num_layers, self.layout)
        self.past = io.past_names(num_layers)
        vocab = outputs[0].shape[-1]
        self.vocab = vocab if isinstance(vocab, int) else None
        self._check_dims(decoder_session, embed_session)
        if self.layout == "fused" and (self.vocab is None or self.hidden is None):
            raise ValueError(
                f"the fused decoder.onnx must have static vocab and hidden sizes, got logits {outputs[0].shape} "
                f"and inputs_embeds width {self.hidden}: re-export the engine with this package"
            )
        self.shrink_after = shrinking_run_options()

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

    def steps(self, capacity: int) -> BoundSteps | HostSteps:
        """A new generation's step runner, with room for `capacity` tokens (prompt + new)."""
        return (BoundSteps if self.layout == "fused" else HostSteps)(self, capacity)

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
        steps = self.steps(s + config.max_new_tokens)
        seen = np.empty(s + config.max_new_tokens, np.int64)
        seen[:s] = prompt_ids
        logits = steps.prefill(inputs_embeds, position_ids)
        token = choose_token(logits, config, seen[:s], rng)
        prefill_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        ids = [token]
        if on_token is not None:
            on_token(token)
        stopped = token in stop_ids
        while not stopped and len(ids) < config.max_new_tokens:
            seen[s + len(ids) - 1] = token
            logits = steps.step(token, s + len(ids) - 1 + rope_delta)
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
        steps = self.steps(s + len(ids))
        rows = [steps.prefill(inputs_embeds, position_ids).copy()]
        for n, token in enumerate(list(ids)[:-1]):
            rows.append(steps.step(int(token), s + n + rope_delta).copy())
        return np.stack(rows).astype(np.float32, copy=False)
