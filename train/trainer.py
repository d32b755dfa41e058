"""Build and run TRL's GRPOTrainer for Seg-Zero with QLoRA: checkpoints, resume, signals, logs.

Generation backend: plain `transformers` `generate` inside GRPOTrainer. It is the fastest
backend that works here, because it is the only one that does:
- TRL's continuous batching (`use_transformers_continuous_batching`, formerly
  `use_transformers_paged`) refuses multimodal processors in TRL 1.16 ("does not support
  multimodal models");
- vLLM in colocate mode would need the bitsandbytes-4-bit base *plus* LoRA weights synced
  into vLLM every step; TRL syncs by merging adapters into the base weights, which is not
  possible into NF4 tensors without dequantising the whole model on each sync, and vLLM's
  own memory pool competes with training on one 24 GB card. A separate vLLM server needs a
  second GPU; this project does not wire TRL's `use_vllm` options in.
Measured consequence (bench/results/train_memory.md): decoding with NF4 + LoRA layers is
bound by host-side work per token, nearly independent of the batch, so more prompts per step
(`prompts_per_step`) raise rollout throughput almost for free until memory runs out.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import checkpoints
from .callbacks import MetricsCsvCallback, SignalCheckpointCallback
from .config import TrainConfig, save_config
from .data import load_train_dataset
from .model import load_policy, load_processor, lora_config, resolve_model_path
from .rewards import TrlReward, reward_functions

if TYPE_CHECKING:
    from trl import GRPOConfig, GRPOTrainer

logger = logging.getLogger("segzero_edge.train")

CONFIG_FILE = "train_config.yaml"
RUN_INFO_FILE = "run_info.json"
#: Fields that may change between a run and its resumption without changing what is trained.
RESUMABLE_CHANGES = {
    "max_steps",
    "num_train_epochs",
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "report_to",
}


@dataclass
class RunResult:
    output_dir: Path
    global_step: int
    last_checkpoint: Path | None
    interrupted_by: str | None  # "SIGTERM" / "SIGINT" when a signal stopped the run
    exit_code: int  # 0, or 128 + signal number after a signal (the shell convention)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device=cuda but torch sees no CUDA GPU; use device=cpu (slow) or install CUDA torch"
        )
    return requested


def effective_optim(optim: str, device: str) -> tuple[str, str | None]:
    """(optimizer to use, note explaining a change or None). Paged/8-bit bitsandbytes optimizers need CUDA."""
    if device == "cpu" and ("paged" in optim or "8bit" in optim):
        return "adamw_torch", f"optim {optim} needs CUDA; using adamw_torch on CPU (32-bit states)"
    return optim, None


def resolve_report_to(report_to: str) -> list[str]:
    if report_to == "auto":
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    if report_to == "none":
        return []
    return [item.strip() for item in report_to.split(",") if item.strip()]


def grpo_args(config: TrainConfig, *, device: str, optim: str) -> GRPOConfig:
    """GRPOConfig with every recipe value set explicitly (TRL's defaults differ from Seg-Zero's)."""
    from trl import GRPOConfig

    generation_kwargs = (
        {"min_new_tokens": config.min_completion_length} if config.min_completion_length else None
    )
    return GRPOConfig(
        output_dir=config.output_dir,
        seed=config.seed,
        use_cpu=device == "cpu",
        # batch geometry: one optimizer step = prompts_per_step prompts x num_generations rollouts,
        # generated together, then trained on in micro-batches
        num_generations=config.num_generations,
        per_device_train_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_completion_length=config.max_completion_length,
        generation_kwargs=generation_kwargs,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=0,
        # policy loss
        beta=config.beta,
        epsilon=config.epsilon,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        num_iterations=1,
        mask_truncated_completions=False,
        disable_dropout=True,
        # optimisation
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        max_grad_norm=config.max_grad_norm,
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        optim=optim,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        # data: keep our ground-truth columns for the rewards
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # run management: checkpoints hold adapter + optimizer + scheduler + RNG + trainer state
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        save_only_model=False,
        logging_steps=config.logging_steps,
        report_to=resolve_report_to(config.report_to),
        log_completions=False,
    )


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest *complete* checkpoint of a run (incomplete folders are never picked)."""
    return checkpoints.scan(output_dir).newest


def _main_process() -> bool:
    # before accelerate starts, the launcher's environment says which process this is
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def _check_resume(config: TrainConfig, resume: bool) -> checkpoints.Scan:
    """The run folder's checkpoints after tidying (`checkpoints.prepare_resume`); `.newest`
    is where to resume. Refuses --resume without a complete checkpoint, and a fresh start
    over one."""
    found_all = checkpoints.prepare_resume(config.output_dir, tidy=_main_process())
    found = found_all.newest
    if found_all.incomplete:
        skipped = ", ".join(p.name for p in found_all.incomplete)
        logger.warning(
            "%s: skipped incomplete checkpoint(s) %s; %s", config.output_dir, skipped,
            f"resuming from {found.name}" if found is not None else "no complete checkpoint remains",
        )
    if resume and found is None:
        raise FileNotFoundError(
            f"--resume: no checkpoint to resume in {config.output_dir} (no complete checkpoint-*)"
            + (f" (skipped incomplete {', '.join(p.name for p in found_all.incomplete)})" if found_all.incomplete else "")
            + "; start without --resume"
        )
    if not resume and found is not None:
        raise FileExistsError(
            f"{config.output_dir} already holds {found.name}: pass --resume to continue that run, "
            "or set output_dir=... for a new one"
        )
    saved = Path(config.output_dir) / CONFIG_FILE
    if resume and saved.is_file():
        from .config import load_config

        before = load_config(saved)
        changed = [f.name for f in fields(config) if getattr(before, f.name) != getattr(config, f.name)]
        risky = [name for name in changed if name not in RESUMABLE_CHANGES]
        if risky:
            logger.warning(
                "resuming with changed settings %s (saved in %s): the run mixes two recipes", risky, saved
            )
    return found_all


def build_trainer(
    config: TrainConfig,
    *,
    resume: bool = False,
    rewards: Sequence[TrlReward] | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> tuple[GRPOTrainer, dict[str, Any]]:
    """GRPOTrainer for `config` plus the run-info record; checks resume/overwrite rules first.

    `rewards` replaces the config's reward list with TRL-form functions (programmatic use).
    """
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    found = _check_resume(config, resume)
    checkpoint = found.newest
    device = resolve_device(config.device)
    optim, optim_note = effective_optim(config.optim, device)
    if optim_note:
        logger.warning(optim_note)
    model_path = resolve_model_path(config.model)
    dataset, report = load_train_dataset(config)

    from trl import GRPOTrainer

    funcs = list(rewards) if rewards is not None else reward_functions(config.rewards)
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    processor = load_processor(model_path)
    model = load_policy(config, model_path, device)
    # checkpoints are written to a staging folder and renamed into place complete
    trainer = checkpoints.atomic_trainer(GRPOTrainer)(
        model=model,
        reward_funcs=funcs,
        args=grpo_args(config, device=device, optim=optim),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora_config(config),
        callbacks=[
            SignalCheckpointCallback(),
            MetricsCsvCallback(config.output_dir, names),
            *extra_callbacks,
        ],
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    info: dict[str, Any] = {
        "model": config.model,
        "model_path": model_path,
        "device": device,
        "gpu": _gpu_name() if device == "cuda" else None,
        "optim": optim,
        "optim_note": optim_note,
        "rewards": names,
        "generation_backend": "transformers.generate (see segzero_edge.train.trainer docstring)",
        "trainable_parameters": trainable,
        "parameters": total,
        "data": {
            "source": report.source,
            "layout": report.layout,
            "seen": report.seen,
            "kept": report.kept,
            "skipped": dict(report.skipped),
        },
        "resumed_from": str(checkpoint) if checkpoint else None,
        "skipped_incomplete_checkpoints": [p.name for p in found.incomplete],
        "versions": _versions(),
    }
    logger.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / max(total, 1))
    return trainer, info


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(torch.cuda.current_device())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("segzero-edge", "torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def run_training(
    config: TrainConfig,
    *,
    resume: bool = False,
    rewards: Sequence[TrlReward] | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train (or resume) one run; returns where it stopped. SIGTERM/SIGINT save and stop cleanly.

    Writes RUN/train_config.yaml (the resolved config), RUN/run_info.json (device, effective
    optimizer, data counts, versions), RUN/metrics.csv, checkpoints, and on completion the
    final adapter in RUN/.
    """
    trainer, info = build_trainer(config, resume=resume, rewards=rewards, extra_callbacks=extra_callbacks)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_FILE)
    info["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    signals = next(
        cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SignalCheckpointCallback)
    )
    trainer.train(resume_from_checkpoint=info["resumed_from"])
    step = trainer.state.global_step
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        found = last_checkpoint(out)
        logger.warning("stopped by %s at step %d; checkpoint %s; continue with --resume", name, step, found)
        return RunResult(out, step, found, name, 128 + signals.received)
    trainer.save_model(str(out))  # the final adapter (+ processor) at the run's top level
    logger.info("finished at step %d; adapter saved in %s", step, out)
    return RunResult(out, step, last_checkpoint(out), None, 0)
