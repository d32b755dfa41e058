"""`OrtReasoner`: the torch-free Qwen2.5-VL reasoner (vision + embed + KV-cache decoder graphs).

    r = OrtReasoner.from_dir("engines/reasoner", provider="cpu", meta=manifest.component("reasoner"))
    enc = r.encode_image(rgb)             # 840×840 resize + vision features, reusable
    g = r.generate(enc, "the red cup")    # Generation(text, prefill_ms, decode_ms, tokens)

Prompt flow: render Seg-Zero's chat prompt from the manifest (`PromptTokenizer`), embed the
ids (`embed.onnx`), overwrite the <|image_pad|> rows with the vision features (numpy, the
same as HF's masked_scatter), M-RoPE positions from `qwen_rope.rope_index`, then prefill and
decode (`TextDecoder`).

The KV cache lives where the decoder runs: fused-layout decoders (the default export) keep it
on the execution device through I/O binding and append in place; portable-layout decoders
(older engines) keep numpy buffers that the graph reads in place, uploaded at every step on a
GPU (`runtime.decode_steps`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segzero_edge.generation import GenerationConfig
from segzero_edge.graphs.qwen_rope import rope_index
from segzero_edge.pipeline import Generation
from segzero_edge.prompts import REASONER_SIZE, check_answer_format, resize_for_reasoner
from segzero_edge.runtime.decoder import DecodeResult, TextDecoder
from segzero_edge.runtime.providers import DEFAULT_SPIN, SpinPolicy, check_spin, create_session
from segzero_edge.runtime.tokenizer import PromptTokenizer
from segzero_edge.stopping import GenerationStopped, RepetitionStop, StopWatch

#: on_token(token_id, text_so_far): called once per generated token (streaming).
TokenCallback = Callable[[int, str], None]
#: image 840×840 RGB uint8 -> (features [n_tokens, hidden] float32, grid_thw [1, 3] int64)
VisionFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class OrtEncoded:
    """An image prepared once for many queries."""

    image: np.ndarray  # [840, 840, 3] uint8
    features: np.ndarray  # [n_tokens, hidden] float32, one row per <|image_pad|>
    grid_thw: np.ndarray  # [1, 3] int64 patch grid
    vision_ms: float = 0.0


@dataclass
class StoppedDecode(DecodeResult):
    """A `DecodeResult` that may have been cut early (`stop_reason`: why; None when it ended
    at a stop token or at max_new_tokens)."""

    stop_reason: str | None = field(default=None)


@dataclass
class Prompt:
    """Decoder inputs for one query."""

    ids: np.ndarray  # [S] int64
    inputs_embeds: np.ndarray  # [1, S, H]
    position_ids: np.ndarray  # [3, 1, S] int64
    rope_delta: int


def _vision_from_dir(
    root: Path, meta: dict[str, Any], provider: str, threads: int | None, spin: SpinPolicy, **provider_options: Any
) -> VisionFn:
    """`OrtVision` over vision.onnx, as a VisionFn."""
    from segzero_edge.runtime.vision import OrtVision

    return OrtVision.from_file(
        root / meta["files"]["vision"], provider=provider, threads=threads, spin=spin, **provider_options
    ).features


class OrtReasoner:
    """Implements the `Reasoner` protocol with onnxruntime; no torch, no transformers."""

    def __init__(
        self,
        text: TextDecoder,
        tokenizer: PromptTokenizer,
        vision: VisionFn,
        meta: dict[str, Any],
        *,
        config: GenerationConfig | None = None,
    ) -> None:
        self.text, self.tokenizer, self.vision, self.meta = text, tokenizer, vision, meta
        # The prompt the manifest's template asks for; manifests written before the format was
        # recorded hold Seg-Zero's original single-object template.
        self.answer_format: str = check_answer_format(meta.get("prompt", {}).get("answer_format", "single"))
        dims = meta["dims"]
        self.spatial_merge_size = int(dims["spatial_merge_size"])
        self.hidden = int(dims["hidden"])
        self.resize = int(meta.get("preprocess", {}).get("resize", REASONER_SIZE))
        default_rp = float(meta.get("generation", {}).get("repetition_penalty", 1.0))
        self.config = (config or GenerationConfig()).resolved(default_rp)
        self._default_rp = default_rp

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        provider: str = "cpu",
        meta: dict[str, Any] | None = None,
        *,
        threads: int | None = None,
        config: GenerationConfig | None = None,
        vision: VisionFn | None = None,
        spin: SpinPolicy = DEFAULT_SPIN,
        **provider_options: Any,
    ) -> OrtReasoner:
        """Load `path/{vision,embed,decoder}.onnx` + tokenizer.json described by `meta` (the
        manifest's reasoner component; read from `path/../manifest.json` when None).
        `vision` replaces the vision graph (tests, or a TensorRT vision engine); `spin` sets
        onnxruntime's intra-op spinning of every graph (`providers.SpinPolicy`: "off", "on" or
        "run"; the default "off" was measured best under load, README "Thread spinning"); provider_options
        (device_id, trt_fp16, trt_cache_dir) go to every session (`providers.execution_providers`)."""
        spin = check_spin(spin)
        root = Path(path)
        if meta is None:
            from segzero_edge.manifest import read_manifest

            meta = read_manifest(root.parent).component("reasoner")
        files = meta["files"]
        dims = meta["dims"]
        text = TextDecoder(
            create_session(root / files["embed"], provider, threads=threads, spin=spin, **provider_options),
            create_session(root / files["decoder"], provider, threads=threads, spin=spin, **provider_options),
            num_layers=int(dims["num_layers"]),
            kv_heads=int(dims["kv_heads"]),
            head_dim=int(dims["head_dim"]),
        )
        if text.hidden is not None and text.hidden != int(dims["hidden"]):
            raise ValueError(
                f"the manifest gives hidden={dims['hidden']}, decoder.onnx takes {text.hidden}: "
                "the manifest does not describe these graphs"
            )
        tokenizer = PromptTokenizer.from_file(root / files["tokenizer"], meta)
        if vision is None:
            vision = _vision_from_dir(root, meta, provider, threads, spin, **provider_options)
        return cls(text, tokenizer, vision, meta, config=config)

    def configure(self, **overrides: Any) -> None:
        """Change the instance's generation settings (GenerationConfig field names)."""
        known = {f.name for f in fields(GenerationConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown generation settings {unknown}; known: {sorted(known)}")
        self.config = replace(self.config, **overrides).resolved(self._default_rp)

    def count_query_tokens(self, query: str) -> int:
        """Tokens of a query's question, as the pipeline's query limit counts them."""
        return self.tokenizer.count_query_tokens(query)

    # -- Reasoner protocol ---------------------------------------------------------------------
    def encode_image(self, image: np.ndarray | Image.Image) -> OrtEncoded:
        """RGB uint8 HxWx3 (or PIL) -> 840×840 bilinear resize + vision features."""
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        resized = np.asarray(resize_for_reasoner(pil, self.resize))
        start = time.perf_counter()
        features, grid = self.vision(resized)
        features = np.asarray(features, dtype=np.float32)
        n_expected = int(np.prod(grid)) // self.spatial_merge_size**2
        if features.ndim != 2 or features.shape != (n_expected, self.hidden):
            raise ValueError(
                f"vision features have shape {features.shape}, expected ({n_expected}, {self.hidden}) for grid "
                f"{np.asarray(grid).tolist()}: the vision graph does not match this decoder"
            )
        return OrtEncoded(
            resized, features, np.asarray(grid, np.int64).reshape(1, 3), (time.perf_counter() - start) * 1e3
        )

    def prompt(self, encoded: OrtEncoded, query: str) -> Prompt:
        """Token ids, embeddings (image rows spliced in) and M-RoPE positions for one query."""
        ids = self.tokenizer.encode_prompt(query, encoded.features.shape[0])
        embeds = self.text.embed(ids[None])
        embeds[0, ids == self.tokenizer.image_pad_id] = encoded.features.astype(embeds.dtype, copy=False)
        positions, deltas = rope_index(
            ids[None],
            encoded.grid_thw,
            image_token_id=self.tokenizer.image_pad_id,
            spatial_merge_size=self.spatial_merge_size,
        )
        return Prompt(ids, embeds, positions, int(deltas[0, 0]))

    def generate_ids(
        self,
        encoded: OrtEncoded,
        query: str,
        config: GenerationConfig | None = None,
        on_token: TokenCallback | None = None,
        *,
        max_time_s: float | None = None,
        repetition_stop: RepetitionStop | None = None,
    ) -> tuple[np.ndarray, StoppedDecode]:
        """(prompt ids [S], StoppedDecode with the new ids, timings and any early-stop reason).

        max_time_s: wall-clock budget from this call's start (prompt, prefill and decode),
        checked after every token. repetition_stop: end a runaway loop (`segzero_edge.stopping`).
        Either one ends decoding after the current token, with `stop_reason` set.
        """
        cfg = (config or self.config).resolved(self._default_rp)
        start = time.perf_counter()
        watch = None
        if max_time_s is not None or repetition_stop is not None:
            watch = StopWatch(max_time_s=max_time_s, repetition=repetition_stop, start=start)
        prompt = self.prompt(encoded, query)
        generated: list[int] = []
        first_token_at: list[float] = []

        def callback(token: int) -> None:
            if not first_token_at:
                first_token_at.append(time.perf_counter())
            generated.append(token)
            if on_token is not None:
                on_token(token, self.tokenizer.decode(generated))
            reason = watch.step(token) if watch is not None else None
            if reason is not None:
                raise GenerationStopped(reason)

        try:
            result = self.text.generate(
                prompt.inputs_embeds,
                prompt.position_ids,
                prompt.ids,
                rope_delta=prompt.rope_delta,
                config=cfg,
                stop_ids=self.tokenizer.stop_ids,
                on_token=callback if (on_token is not None or watch is not None) else None,
                prefill_start=start,
            )
        except GenerationStopped as stop:
            end = time.perf_counter()
            first = first_token_at[0] if first_token_at else end
            return prompt.ids, StoppedDecode(
                list(generated), (first - start) * 1e3, (end - first) * 1e3, False, stop_reason=stop.reason
            )
        return prompt.ids, StoppedDecode(result.ids, result.prefill_ms, result.decode_ms, result.stopped)

    def teacher_forced_logits(
        self, encoded: OrtEncoded, query: str, ids: list[int] | np.ndarray
    ) -> np.ndarray:
        """Logits [len(ids), V] for given continuation ids (row n predicts ids[n]); for parity checks."""
        prompt = self.prompt(encoded, query)
        return self.text.teacher_forced(
            prompt.inputs_embeds, prompt.position_ids, ids, rope_delta=prompt.rope_delta
        )

    def generate(
        self,
        encoded: OrtEncoded | np.ndarray | Image.Image,
        query: str,
        config: GenerationConfig | None = None,
        *,
        on_token: TokenCallback | None = None,
        max_time_s: float | None = None,
        repetition_stop: RepetitionStop | None = None,
        **overrides: Any,
    ) -> Generation:
        """Answer one query (Seg-Zero prompt). Settings: the instance's config, replaced by
        `config`, then by keyword overrides; `on_token(id, text_so_far)` streams tokens;
        `max_time_s` and `repetition_stop` end decoding early (`Generation.stop_reason`)."""
        if not isinstance(encoded, OrtEncoded):
            encoded = self.encode_image(encoded)
        cfg = config or self.config
        if overrides:
            cfg = replace(cfg, **overrides)
        _, result = self.generate_ids(
            encoded, query, cfg, on_token, max_time_s=max_time_s, repetition_stop=repetition_stop
        )
        return Generation(
            self.tokenizer.decode(result.ids),
            result.prefill_ms,
            result.decode_ms,
            len(result.ids),
            stop_reason=result.stop_reason,
        )
