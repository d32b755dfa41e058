"""The recipe config: YAML loading, overrides, invariants, and what reaches GRPOConfig / peft / bnb."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from segzero_edge.rewards import SEG_ZERO_COMPONENTS
from segzero_edge.train.config import TrainConfig, config_from_dict, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"


@pytest.mark.parametrize("name", ["seg_zero_3b_qlora", "seg_zero_7b_qlora"])
def test_shipped_recipes_are_seg_zero(name: str):
    c = load_config(CONFIGS / f"{name}.yaml")
    size = name.split("_")[2].upper()
    assert c.model == f"Qwen/Qwen2.5-VL-{size}-Instruct"
    # Seg-Zero: n=8, T=1.0, k3 KL 5e-3, clip 0.2, 1300 tokens, 840x840, its system prompt, strict rewards
    assert (c.num_generations, c.temperature, c.top_p, c.beta, c.epsilon) == (8, 1.0, 1.0, 5e-3, 0.2)
    assert (c.max_completion_length, c.image_size) == (1300, 840)
    assert c.system_prompt == "You are a helpful assistant."
    assert c.rewards == list(SEG_ZERO_COMPONENTS)
    # QLoRA on one GPU
    assert (c.quantization, c.double_quant, c.compute_dtype) == ("nf4", True, "bfloat16")
    assert c.quant_skip_modules == ["visual", "lm_head"]
    assert c.lora_target_modules == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert not c.lora_vision
    assert (c.optim, c.gradient_checkpointing, c.bf16) == ("paged_adamw_8bit", True, True)
    assert 1e-5 <= c.learning_rate <= 5e-5
    assert c.prompts_per_step * c.num_generations % c.micro_batch_size == 0


def test_tiny_cpu_runs_without_a_hub():
    c = load_config(CONFIGS / "tiny_cpu.yaml")
    assert (c.model, c.data, c.device, c.quantization) == ("tiny", "synthetic", "cpu", "nf4")
    assert c.optim == "adamw_torch" and not c.bf16


def test_overrides_are_typed():
    c = load_config(
        CONFIGS / "tiny_cpu.yaml",
        ["beta=0.01", "max_steps=7", "rewards=think_format,bbox_iou", "system_prompt=none"],
    )
    assert (c.beta, c.max_steps, c.rewards, c.system_prompt) == (0.01, 7, ["think_format", "bbox_iou"], None)


def test_yaml_scientific_notation_strings_are_floats(tmp_path: Path):
    # PyYAML reads `5e-3` (no dot) as a string
    path = tmp_path / "c.yaml"
    path.write_text("data: synthetic\nbeta: 5e-3\nlearning_rate: 2e-5\nnum_train_epochs: 2\n")
    c = load_config(path)
    assert c.beta == 5e-3 and isinstance(c.beta, float)
    assert c.learning_rate == 2e-5 and c.num_train_epochs == 2.0


def test_round_trip(tmp_path: Path):
    c = load_config(CONFIGS / "seg_zero_3b_qlora.yaml", ["seed=7"])
    assert load_config(save_config(c, tmp_path / "saved.yaml")) == c


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nope": 1}, "unknown config keys"),
        ({"num_generations": 1}, "num_generations must be >= 2"),
        ({"image_size": 100}, "not a multiple of 28"),
        (
            {"num_generations": 8, "prompts_per_step": 1, "micro_batch_size": 3},
            "not a multiple of micro_batch_size 3",
        ),
        ({"rewards": ["bbox_iou", "made_up"]}, "unknown rewards"),
        ({"min_completion_length": 2000}, "min_completion_length"),
        ({"data": ""}, "data is not set"),
        ({"temperature": 0}, "temperature"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_invariants(values: dict, message: str):
    with pytest.raises(ValueError, match=message):
        config_from_dict({"data": "synthetic", **values})


def test_unknown_override_key():
    with pytest.raises(ValueError, match="unknown config key 'betta'"):
        load_config(CONFIGS / "tiny_cpu.yaml", ["betta=1"])


def test_every_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(TrainConfig))


def test_grpo_args_set_the_recipe_explicitly():
    pytest.importorskip("trl")  # the trainer needs the [train] stack
    from segzero_edge.train.trainer import grpo_args

    c = load_config(CONFIGS / "seg_zero_7b_qlora.yaml", ["min_completion_length=1300"])
    a = grpo_args(c, device="cpu", optim="adamw_torch")
    # TRL's own defaults are beta=0, loss dapo, 512 tokens: each must come from the recipe
    assert (a.beta, a.loss_type, a.max_completion_length, a.epsilon, a.temperature) == (
        5e-3,
        "bnpo",
        1300,
        0.2,
        1.0,
    )
    assert (a.num_generations, a.per_device_train_batch_size, a.gradient_accumulation_steps) == (8, 4, 4)
    assert a.generation_batch_size == 16 and a.steps_per_generation == 4
    assert a.bf16 is True and a.gradient_checkpointing is True
    assert a.remove_unused_columns is False  # the rewards need gt_bbox / gt_points
    assert a.generation_kwargs == {"min_new_tokens": 1300}
    assert a.scale_rewards == "group" and a.num_iterations == 1 and a.top_k == 0
    assert a.save_strategy == "steps" and a.save_steps == 50 and a.save_total_limit == 3


def test_optimizer_fallback_on_cpu_is_announced():
    pytest.importorskip("trl")  # the trainer needs the [train] stack
    from segzero_edge.train.trainer import effective_optim

    assert effective_optim("paged_adamw_8bit", "cuda") == ("paged_adamw_8bit", None)
    optim, note = effective_optim("paged_adamw_8bit", "cpu")
    assert optim == "adamw_torch" and "needs CUDA" in note
    assert effective_optim("adamw_torch", "cpu") == ("adamw_torch", None)


def test_lora_targets_the_language_model_only():
    pytest.importorskip("trl")  # the trainer needs the [train] stack
    from segzero_edge.train.model import lora_target_regex, quantization_config

    c = load_config(CONFIGS / "seg_zero_3b_qlora.yaml")
    pattern = re.compile(lora_target_regex(c))
    lm = [f"model.language_model.layers.3.self_attn.{m}" for m in ("q_proj", "k_proj", "v_proj", "o_proj")]
    lm += [f"model.language_model.layers.0.mlp.{m}" for m in ("gate_proj", "up_proj", "down_proj")]
    vision = [
        "model.visual.blocks.0.attn.qkv",
        "model.visual.blocks.0.attn.proj",
        "model.visual.blocks.1.mlp.up_proj",
    ]
    other = [
        "lm_head",
        "model.visual.merger.mlp.0",
        "model.language_model.embed_tokens",
        "model.language_model.layers.0.mlp",
    ]
    assert all(pattern.fullmatch(n) for n in lm)
    assert not any(pattern.fullmatch(n) for n in vision + other)
    with_vision = re.compile(lora_target_regex(dataclasses.replace(c, lora_vision=True)))
    assert all(with_vision.fullmatch(n) for n in lm + vision)
    assert not any(with_vision.fullmatch(n) for n in other)

    q = quantization_config(c)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert str(q.bnb_4bit_compute_dtype) == "torch.bfloat16"
    assert q.llm_int8_skip_modules == [r"(?:.*\.)?visual", r"(?:.*\.)?lm_head"]
    assert quantization_config(dataclasses.replace(c, quantization="none")) is None
