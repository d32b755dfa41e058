"""The training recipe as one flat, typed config, loaded from YAML with `key=value` overrides.

Defaults are Seg-Zero's recipe moved to one GPU with 4-bit QLoRA (see
`train/configs/seg_zero_3b_qlora.yaml`). TRL's own GRPOConfig defaults differ from
Seg-Zero (beta=0, loss "dapo", 512 tokens, ...), so `trainer.grpo_args` sets every one of
them explicitly from this config.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from segzero_edge.dataclass_args import apply_overrides, parse_value
from segzero_edge.prompts import REASONER_SIZE, SYSTEM_PROMPT
from segzero_edge.rewards import REWARDS, SEG_ZERO_COMPONENTS
from segzero_edge.rewards_multi import REWARDS_MULTI, VISION_REASONER_COMPONENTS

#: Rewards that read the text only, valid in either answer format.
_TEXT_ONLY_REWARDS = ("think_format",)

#: The language model's linear layers in Qwen2.5-VL (attention and MLP).
LM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

Dtype = Literal["bfloat16", "float16", "float32"]


@dataclass
class TrainConfig:
    # --- what to train on -------------------------------------------------------------
    model: str = field(
        default="Qwen/Qwen2.5-VL-3B-Instruct",
        metadata={"help": "base reasoner: a Hub id, a local HF dir, or 'tiny' (the tiny random test model; `segzero-edge train` resolves it)"},
    )
    data: str = field(
        default="",
        metadata={
            "help": "training data: a datasets.save_to_disk dir, a parquet file or dir of parquet files, "
            "or 'synthetic' (a few generated image+mask rows)"
        },
    )
    answer_format: Literal["single", "multi"] = field(
        default="single",
        metadata={
            "help": "single: Seg-Zero's original one-object answers; multi: its current (VisionReasoner) "
            "list of objects, with its prompt, a `solution` ground-truth column and its rewards"
        },
    )
    data_format: Literal["auto", "segzero", "mask", "instances"] = field(
        default="auto",
        metadata={
            "help": "segzero: problem/solution/image rows; mask: image/text/mask rows; instances (multi "
            "only): image/text/masks rows; auto: from the columns"
        },
    )
    data_split: str = field(
        default="train", metadata={"help": "split to use when the data dir holds a DatasetDict"}
    )
    max_samples: int | None = field(
        default=None, metadata={"help": "use at most this many rows (after skipping bad ones)"}
    )
    synthetic_rows: int = field(default=16, metadata={"help": "rows generated for data=synthetic"})
    validate_images: bool = field(
        default=True, metadata={"help": "decode every image once before training and skip unreadable rows"}
    )
    output_dir: str = field(
        default="runs/seg_zero_3b_qlora", metadata={"help": "run directory (checkpoints, logs)"}
    )
    seed: int = field(default=42, metadata={"help": "seed for LoRA init, sampling and data order"})

    # --- inputs ---------------------------------------------------------------------------
    image_size: int = field(
        default=REASONER_SIZE,
        metadata={"help": "images are resized to this square (Seg-Zero: 840); ground truth is scaled to it"},
    )
    system_prompt: str | None = field(
        default=SYSTEM_PROMPT,
        metadata={"help": "system turn of every prompt (none: the chat template's default)"},
    )
    max_completion_length: int = field(
        default=1300, metadata={"help": "longest completion in tokens (Seg-Zero: 1300)"}
    )
    min_completion_length: int = field(
        default=0, metadata={"help": "force completions to at least this many tokens (benchmarks; 0 = off)"}
    )

    # --- rollouts and policy ---------------------------------------------------------------
    num_generations: int = field(default=8, metadata={"help": "rollouts per prompt, n (Seg-Zero: 8)"})
    prompts_per_step: int = field(default=2, metadata={"help": "distinct prompts per optimizer step"})
    micro_batch_size: int = field(
        default=4,
        metadata={
            "help": "completions per forward/backward pass; the step's prompts_per_step*num_generations "
            "completions are processed in chunks of this size (gradient accumulation)"
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (Seg-Zero: 1.0)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling (Seg-Zero: 1.0)"})
    beta: float = field(default=5e-3, metadata={"help": "KL coefficient, k3 estimator (Seg-Zero: 5e-3)"})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range (Seg-Zero: 0.2)"})
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = field(
        default="bnpo",
        metadata={
            "help": "loss aggregation; bnpo = token mean per micro-batch, veRL's token-mean as in Seg-Zero"
        },
    )
    scale_rewards: Literal["group", "batch", "none"] = field(
        default="group", metadata={"help": "advantage normalisation (GRPO: per-group std)"}
    )
    rewards: list[str] = field(
        default_factory=lambda: list(SEG_ZERO_COMPONENTS),
        metadata={
            "help": "rewards, summed; each is logged on its own: registered names (segzero_edge.rewards.REWARDS) "
            "or 'package.module:function' in TRL's form"
        },
    )

    # --- optimisation ---------------------------------------------------------------------
    learning_rate: float = field(
        default=1e-5,
        metadata={"help": "LoRA learning rate (Seg-Zero's full fine-tune uses 1e-6; adapters want ~10x)"},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (Seg-Zero: 1e-2)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    max_steps: int = field(
        default=-1, metadata={"help": "optimizer steps; -1 = num_train_epochs over the data"}
    )
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs when max_steps is -1"})
    optim: str = field(
        default="paged_adamw_8bit",
        metadata={
            "help": "optimizer; paged_adamw_8bit needs CUDA and falls back (with a note) to adamw_torch on CPU"
        },
    )
    gradient_checkpointing: bool = field(default=True, metadata={"help": "recompute activations in backward"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast for training"})

    # --- QLoRA ----------------------------------------------------------------------------
    quantization: Literal["nf4", "fp4", "none"] = field(
        default="nf4",
        metadata={"help": "base-weight quantisation (bitsandbytes 4-bit) or none for plain LoRA"},
    )
    double_quant: bool = field(default=True, metadata={"help": "quantise the quantisation constants too"})
    compute_dtype: Dtype = field(default="bfloat16", metadata={"help": "4-bit matmul compute dtype"})
    dtype: Dtype = field(default="bfloat16", metadata={"help": "dtype of the weights left unquantised"})
    quant_skip_modules: list[str] = field(
        default_factory=lambda: ["visual", "lm_head"],
        metadata={"help": "modules kept out of 4-bit (the vision tower and the LM head)"},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "LoRA dropout (0: keeps the policy's log-probs deterministic)"}
    )
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(LM_LINEAR_LAYERS),
        metadata={"help": "language-model linear layers that get adapters"},
    )
    lora_vision: bool = field(
        default=False, metadata={"help": "also put adapters on the vision tower's attention and MLP layers"}
    )
    attn_implementation: str | None = field(
        default="sdpa", metadata={"help": "attention kernel (sdpa, eager, ...)"}
    )

    # --- run management -------------------------------------------------------------------
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    save_total_limit: int | None = field(default=3, metadata={"help": "keep at most this many checkpoints"})
    logging_steps: int = field(default=1, metadata={"help": "log (and write metrics.csv) every N steps"})
    report_to: str = field(
        default="auto",
        metadata={"help": "auto (tensorboard if installed), none, or a transformers report_to list"},
    )
    device: Literal["auto", "cuda", "cpu"] = field(default="auto", metadata={"help": "where to train"})

    def __post_init__(self) -> None:
        positive = {
            "image_size": self.image_size,
            "max_completion_length": self.max_completion_length,
            "prompts_per_step": self.prompts_per_step,
            "micro_batch_size": self.micro_batch_size,
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "save_steps": self.save_steps,
            "logging_steps": self.logging_steps,
            "synthetic_rows": self.synthetic_rows,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (GRPO compares rollouts of one prompt), got {self.num_generations}"
            )
        if self.image_size % 28:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of 28 (patch 14 x merge 2); use e.g. 840, 448, 112"
            )
        if not 0 <= self.min_completion_length <= self.max_completion_length:
            raise ValueError(
                f"min_completion_length {self.min_completion_length} must lie in [0, max_completion_length="
                f"{self.max_completion_length}]"
            )
        total = self.prompts_per_step * self.num_generations
        if total % self.micro_batch_size:
            raise ValueError(
                f"prompts_per_step*num_generations = {total} completions per step is not a multiple of "
                f"micro_batch_size {self.micro_batch_size}; pick a divisor of {total}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (GRPO samples), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(
                f"beta must be >= 0 and epsilon > 0, got beta={self.beta}, epsilon={self.epsilon}"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        known = {**REWARDS, **REWARDS_MULTI}
        unknown = [name for name in self.rewards if name not in known and ":" not in name]
        if unknown or not self.rewards:
            raise ValueError(f"unknown rewards {unknown or '(none given)'}; known: {', '.join(sorted(known))}")
        if self.data_format == "instances" and self.answer_format != "multi":
            raise ValueError("data_format=instances gives multi-object ground truth: set answer_format=multi")
        # each reward reads its format's ground-truth columns: a mismatch would score 0 silently
        other = REWARDS_MULTI if self.answer_format == "single" else REWARDS
        wrong = [n for n in self.rewards if n in other and n not in _TEXT_ONLY_REWARDS]
        if wrong:
            fix = SEG_ZERO_COMPONENTS if self.answer_format == "single" else VISION_REASONER_COMPONENTS
            raise ValueError(
                f"rewards {wrong} do not score {self.answer_format}-format answers; for answer_format="
                f"{self.answer_format} use e.g. rewards=[{','.join(fix)}]"
            )
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules is empty: name at least one layer, e.g. q_proj,v_proj")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"max_steps must be a positive step count or -1 (use epochs), got {self.max_steps}"
            )
        if not self.data:
            raise ValueError(
                "data is not set: give a dataset path (save_to_disk dir or parquet) or 'synthetic'"
            )

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.prompts_per_step * self.num_generations // self.micro_batch_size


def _coerce(name: str, tp: Any, value: Any) -> Any:
    """YAML values to the field's type: strings go through the CLI parser (YAML 1.1 reads
    `5e-3` as a string), ints widen to floats, lists stay lists."""
    if isinstance(value, str):
        return parse_value(tp, value)
    inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    if float in inner and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and typing.get_origin(inner[0]) is list:
        (item_tp,) = typing.get_args(inner[0]) or (str,)
        return [_coerce(name, item_tp, v) for v in value]
    return value


def config_from_dict(values: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Build a `TrainConfig` from a mapping (e.g. parsed YAML), then apply `key=value` overrides."""
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known: {', '.join(sorted(hints))}")
    config = TrainConfig(**{name: _coerce(name, hints[name], value) for name, value in values.items()})
    return apply_overrides(config, list(overrides)) if overrides else config


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML config (a flat mapping of `TrainConfig` fields) and apply `key=value` overrides."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(values).__name__}")
    try:
        return config_from_dict(values, overrides)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (what the run really used)."""
    import yaml

    path = Path(path)
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")
    return path
