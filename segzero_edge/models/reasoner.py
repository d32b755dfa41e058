"""PyTorch reference reasoner: Qwen2.5-VL (or Qwen2-VL) through transformers' `generate`.

Seg-Zero checkpoints share the architecture, so any of them (local dir or Hub id) loads here,
optionally with a peft LoRA adapter (merged on request). This is the reference the exported
runtime is checked against (`segzero_edge.export.verify_reasoner`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from segzero_edge.generation import GenerationConfig
from segzero_edge.pipeline import Generation
from segzero_edge.prompts import chat_messages, check_answer_format, resize_for_reasoner, user_prompt

__all__ = ["GenerationConfig", "TorchEncoded", "TorchIds", "TorchReasoner"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


@dataclass
class TorchEncoded:
    """An image prepared once for many queries: the 840×840 image, its processor outputs and
    the vision tower's output (passed to `generate` as `mm_encoder_outputs`, so the vision
    tower runs once per image, not once per query)."""

    image: Image.Image  # 840×840 RGB
    pixel_values: torch.Tensor  # [N, 1176]
    image_grid_thw: torch.Tensor  # [1, 3]
    vision: Any = None  # BaseModelOutputWithPooling of get_image_features; pooler_output = features
    vision_ms: float = 0.0

    @property
    def features(self) -> torch.Tensor:
        """Image features [n_tokens, hidden], one row per <|image_pad|> token."""
        return torch.cat(list(self.vision.pooler_output), dim=0)


@dataclass
class TorchIds:
    """One HF `generate` call: ids, timings and (on request) the raw logits of each new token."""

    prompt_ids: np.ndarray  # [S] int64
    ids: list[int]  # new tokens, including the stop token when one was produced
    prefill_ms: float
    decode_ms: float
    logits: np.ndarray | None = None  # [len(ids), V] float32, before logits processors
    stop_reason: str | None = None  # set when on_token's watch (time budget, repetition) cut it


class _Watch:
    """A generate() stopping criterion: streams each new token to `on_token(id, text)` and
    applies `segzero_edge.stopping.StopWatch`; `reason` says why it stopped."""

    def __init__(self, watch: Any, on_token: Any, decode: Any) -> None:
        self.watch, self.on_token, self.decode = watch, on_token, decode
        self.ids: list[int] = []
        self.reason: str | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        token = int(input_ids[0, -1])
        self.ids.append(token)
        if self.on_token is not None:
            self.on_token(token, self.decode(self.ids))
        if self.watch is not None and self.reason is None:
            self.reason = self.watch.step(token)
        return torch.full((input_ids.shape[0],), self.reason is not None, dtype=torch.bool, device=input_ids.device)


class _StepTimer:
    """A generate() streamer that only records when the first new token arrives."""

    def __init__(self) -> None:
        self.start = 0.0
        self.first: float | None = None
        self._calls = 0

    def put(self, value: torch.Tensor) -> None:
        self._calls += 1  # call 1 is the prompt, call 2 the first new token
        if self._calls == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def _model_class(config: Any) -> type:
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    classes = {"qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, "qwen2_vl": Qwen2VLForConditionalGeneration}
    if config.model_type not in classes:
        raise ValueError(
            f"model_type {config.model_type!r} is not supported; the reasoner must be a Qwen2.5-VL or Qwen2-VL "
            "checkpoint (Seg-Zero checkpoints are Qwen2.5-VL)"
        )
    return classes[config.model_type]


class TorchReasoner:
    """Implements the `Reasoner` protocol with transformers. Build with `from_pretrained`.

    `answer_format` picks Seg-Zero's prompt: "single" (the original release) or "multi" (its
    current, VisionReasoner release); `ReasoningPipeline` parses the format declared here.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        config: GenerationConfig | None = None,
        source: str = "",
        answer_format: str = "single",
    ) -> None:
        self.answer_format = check_answer_format(answer_format)
        self.model = model.eval()
        self.processor = processor
        self.config = config or GenerationConfig()
        self.source = source
        gen = getattr(model, "generation_config", None)
        #: The checkpoint's repetition penalty (HF applies it in greedy mode too).
        self.default_repetition_penalty = float(getattr(gen, "repetition_penalty", None) or 1.0)
        eos = getattr(gen, "eos_token_id", None)
        if eos is None:
            eos = model.config.get_text_config().eos_token_id
        self.eos_ids: list[int] = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]
        pad = getattr(gen, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike[str],
        *,
        adapter: str | None = None,
        merge_adapter: bool = False,
        device: str = "cpu",
        dtype: str | torch.dtype = "float32",
        trust_remote_code: bool = False,
        config: GenerationConfig | None = None,
        answer_format: str = "single",
    ) -> TorchReasoner:
        """Load a Qwen2.5-VL / Qwen2-VL checkpoint (+ optional peft LoRA adapter) and its processor."""
        from transformers import AutoConfig

        from segzero_edge.models.processor import load_processor

        check_answer_format(answer_format)  # before the (slow) load

        src = os.fspath(path_or_hub_id)
        torch_dtype = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"dtype {dtype!r} is not one of {sorted(_DTYPES)} or a torch.dtype")
        hf_config = AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code)
        model = _model_class(hf_config).from_pretrained(
            src, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
            if merge_adapter:
                model = model.merge_and_unload()
        elif merge_adapter:
            raise ValueError("merge_adapter=True needs an adapter path")
        model = model.to(device)
        processor = load_processor(src, trust_remote_code=trust_remote_code)
        return cls(model, processor, config=config, source=src, answer_format=answer_format)

    @property
    def hf_model(self) -> Any:
        """The underlying transformers model (a merged or plain model; unwraps an unmerged peft model)."""
        base = getattr(self.model, "get_base_model", None)
        return base() if base is not None and not hasattr(self.model, "lm_head") else self.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- Reasoner protocol -------------------------------------------------------------------------
    def encode_image(self, image: np.ndarray | Image.Image) -> TorchEncoded:
        """RGB uint8 HxWx3 (or PIL) -> 840×840 image + pixel_values / image_grid_thw."""
        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        resized = resize_for_reasoner(pil)
        out = self.processor.image_processor(images=[resized], return_tensors="pt")
        pixel_values, grid = out["pixel_values"].to(self.device), out["image_grid_thw"].to(self.device)
        start = time.perf_counter()
        with torch.inference_mode():
            vision = self.model.get_image_features(pixel_values, grid, return_dict=True)
        return TorchEncoded(resized, pixel_values, grid, vision, (time.perf_counter() - start) * 1e3)

    def _chat_parts(self) -> tuple[str, str]:
        """(prefix, suffix): the chat template rendered around a sentinel user text, once."""
        if getattr(self, "_parts", None) is None:
            from segzero_edge.graphs.reasoner_prompt import USER_SENTINEL

            messages = chat_messages("x")
            messages[-1]["content"][-1]["text"] = USER_SENTINEL
            rendered = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prefix, suffix = rendered.split(USER_SENTINEL)
            self._parts = (prefix, suffix)
        return self._parts

    def count_query_tokens(self, query: str) -> int:
        """Tokens of a query's question, as the pipeline's query limit counts them."""
        from segzero_edge.prompts import normalize_question

        tok = self.processor.tokenizer
        return len(tok(normalize_question(query), add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def prompt_inputs(self, encoded: TorchEncoded, query: str) -> dict[str, torch.Tensor]:
        """Processor outputs for one query (input_ids, attention_mask, mm_token_type_ids,
        pixel_values, image_grid_thw).

        The chat text is the processor's own template, but the user text is tokenised as plain
        text (`split_special_tokens`): a query holding "<|im_end|>" or "<|image_pad|>" stays a
        query, exactly as the runtime's `PromptTokenizer` encodes it. The prefix ends and the
        suffix starts with a special token, so the ids equal the whole-text encoding otherwise.
        """
        prefix, suffix = self._chat_parts()
        tok = self.processor.tokenizer
        inputs = self.processor(text=[prefix], images=[encoded.image], return_tensors="pt")
        text = user_prompt(query, self.answer_format)
        user = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        tail = tok(suffix, add_special_tokens=False)["input_ids"]
        extra = torch.tensor([user + tail], dtype=inputs["input_ids"].dtype)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "mm_token_type_ids" in inputs:  # 0 = text for every appended id
            kinds = inputs["mm_token_type_ids"]
            inputs["mm_token_type_ids"] = torch.cat([kinds, torch.zeros_like(extra, dtype=kinds.dtype)], dim=1)
        return {k: v.to(self.device) for k, v in inputs.items()}

    def generate_ids(
        self,
        encoded: TorchEncoded,
        query: str,
        config: GenerationConfig | None = None,
        *,
        return_logits: bool = False,
        on_token: Any = None,
        max_time_s: float | None = None,
        repetition_stop: Any = None,
    ) -> TorchIds:
        """HF `generate` for one query: prompt and new ids, timings, optionally the raw logits.

        Prefill time runs until the first new token reaches the streamer; decode time is the rest.
        on_token(id, text_so_far), max_time_s and repetition_stop behave as in the runtime
        (`segzero_edge.stopping`), through a stopping criterion.
        """
        cfg = (config or self.config).resolved(self.default_repetition_penalty)
        inputs = self.prompt_inputs(encoded, query)
        if encoded.vision is not None:  # reuse the image's vision features
            inputs.pop("pixel_values")
            inputs["mm_encoder_outputs"] = {"image": encoded.vision}
        timer = _StepTimer()
        kwargs: dict[str, Any] = {
            "max_new_tokens": cfg.max_new_tokens,
            "do_sample": not cfg.greedy,
            "repetition_penalty": cfg.repetition_penalty,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
            # explicit, so a checkpoint's generation_config (Qwen ships top_k=1) cannot change the sampler
            "top_k": 0,  # 0 = off; None would fall back to the checkpoint's or HF's default (50)
            "top_p": cfg.top_p if not cfg.greedy else None,
            "temperature": cfg.temperature if not cfg.greedy else None,
            "streamer": timer,
            "return_dict_in_generate": True,
            "output_logits": return_logits,
        }
        watch = None
        timer.start = time.perf_counter()
        if on_token is not None or max_time_s is not None or repetition_stop is not None:
            from transformers import StoppingCriteriaList

            from segzero_edge.stopping import StopWatch

            stop = None
            if max_time_s is not None or repetition_stop is not None:
                stop = StopWatch(max_time_s=max_time_s, repetition=repetition_stop, start=timer.start)
            decode = self.processor.tokenizer.decode
            watch = _Watch(stop, on_token, lambda ids: decode(ids, skip_special_tokens=True))
            kwargs["stopping_criteria"] = StoppingCriteriaList([watch])
        if not cfg.greedy and cfg.seed is not None:
            torch.manual_seed(cfg.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        end = time.perf_counter()
        first = timer.first if timer.first is not None else end
        prompt = inputs["input_ids"][0]
        logits = None
        if return_logits:
            logits = torch.cat([step.float() for step in out.logits], dim=0).cpu().numpy()
        return TorchIds(
            prompt_ids=prompt.cpu().numpy(),
            ids=out.sequences[0, prompt.shape[0] :].tolist(),
            prefill_ms=(first - timer.start) * 1e3,
            decode_ms=(end - first) * 1e3,
            logits=logits,
            stop_reason=watch.reason if watch is not None else None,
        )

    def generate(
        self,
        encoded: TorchEncoded | np.ndarray | Image.Image,
        query: str,
        config: GenerationConfig | None = None,
        *,
        on_token: Any = None,
        max_time_s: float | None = None,
        repetition_stop: Any = None,
        **overrides: Any,
    ) -> Generation:
        """Answer one query about an encoded image (or a raw image, encoded on the fly).
        `on_token`, `max_time_s`, `repetition_stop`: as `OrtReasoner.generate`.

        Settings: the instance's `config`, replaced by `config`, then by keyword overrides
        (max_new_tokens, temperature, top_p, seed, repetition_penalty).
        """
        if not isinstance(encoded, TorchEncoded):
            encoded = self.encode_image(encoded)
        cfg = config or self.config
        if overrides:
            cfg = replace(cfg, **overrides)
        out = self.generate_ids(
            encoded, query, cfg, on_token=on_token, max_time_s=max_time_s, repetition_stop=repetition_stop
        )
        text = self.processor.tokenizer.decode(
            out.ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return Generation(
            text=text, prefill_ms=out.prefill_ms, decode_ms=out.decode_ms, tokens=len(out.ids), stop_reason=out.stop_reason
        )
