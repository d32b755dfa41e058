"""The policy for QLoRA GRPO: base reasoner in 4-bit NF4 (vision tower and LM head kept in
bf16), LoRA adapters on the language model's linear layers, and the processor.

Quantisation enters through exactly one door: we load the model already quantised here and
hand the instance to GRPOTrainer (no `quantization_config=`, no `model_init_kwargs`). The
adapters are created by GRPOTrainer from `lora_config(...)`, so with beta > 0 its reference
policy is this same model with the adapters disabled: no second copy in memory.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, PreTrainedModel, ProcessorMixin

    from .config import TrainConfig

logger = logging.getLogger("segzero_edge.train")

#: Vision-tower linear layers (Qwen2.5-VL blocks: fused qkv, proj, and the gated MLP).
VISION_LINEAR_LAYERS = ("qkv", "proj", "gate_proj", "up_proj", "down_proj")


def torch_dtype(name: str) -> Any:
    import torch

    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(dtypes)}")
    return dtypes[name]


def resolve_model_path(model: str) -> str:
    """The base model as given (a Hub id or a local Hugging Face dir).

    'tiny' (the tiny random test model of `train/configs/tiny_cpu.yaml`) is resolved by the
    caller: `segzero-edge train` does it, so training never depends on the test helpers.
    """
    if model == "tiny":
        raise ValueError(
            "model 'tiny' is resolved by `segzero-edge train`; from Python pass the tiny model's directory "
            "(segzero_edge.testing.cached_tiny_models().reasoner)"
        )
    return model


def load_processor(path: str) -> ProcessorMixin:
    """Qwen2.5-VL processor without the torchvision video processor, prompts padded on the left."""
    from segzero_edge.models.processor import load_processor as project_loader

    processor = project_loader(path)
    processor.tokenizer.padding_side = "left"  # GRPOTrainer pads prompts on the left
    return processor


def quantization_config(config: TrainConfig) -> BitsAndBytesConfig | None:
    """bitsandbytes 4-bit config (NF4 + double quant + bf16 compute in the recipe); None for plain LoRA."""
    if config.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quantization,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=torch_dtype(config.compute_dtype),
        # The vision tower stays in bf16 (it is small, frozen, and 4-bit hurts its features);
        # lm_head stays too: TRL computes log-probs from its weight directly.
        llm_int8_skip_modules=skip_patterns(config.quant_skip_modules),
    )


def skip_patterns(modules: list[str]) -> list[str]:
    r"""Module names → patterns transformers' quantizer skips at any depth.

    transformers 5 matches skip entries from the start of the full module name or as a suffix,
    so a bare "visual" no longer skips `model.visual.blocks.0.attn.qkv` (it did in 4.x, by
    substring): the vision tower would silently be quantised. `(?:.*\.)?visual` matches it.
    """
    return [rf"(?:.*\.)?{re.escape(m)}" for m in modules]


def lora_target_regex(config: TrainConfig) -> str:
    """A full-match regex over module names: the LM's linear layers, plus the vision tower's if asked."""
    lm = "|".join(re.escape(m) for m in config.lora_target_modules)
    pattern = rf".*language_model.*\.({lm})"
    if config.lora_vision:
        vision = "|".join(re.escape(m) for m in VISION_LINEAR_LAYERS)
        pattern = rf"(?:{pattern})|(?:.*visual\.blocks.*\.({vision}))"
    return pattern


def lora_config(config: TrainConfig) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_regex(config),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_policy(config: TrainConfig, model_path: str, device: str) -> PreTrainedModel:
    """The base reasoner, quantised per `config`, on `device` ("cuda" places it on this process's GPU)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    kwargs: dict[str, Any] = {"dtype": torch_dtype(config.dtype)}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    quant = quantization_config(config)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if device == "cuda":
        # One full copy per process (DDP under accelerate launch sets LOCAL_RANK).
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_path, **kwargs)
    # The vision tower and embeddings are frozen; only the adapters GRPOTrainer adds will train.
    for param in model.parameters():
        param.requires_grad_(False)
    return model
