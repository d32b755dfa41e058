"""Merge a run's LoRA adapter into its base model: a plain Hugging Face dir for `segzero-edge export`.

The base is loaded unquantised (bf16 or fp32), never in 4-bit: merging into NF4 weights
would round the update away. The adapter was trained against the NF4-dequantised base, so
the merged model differs from the training-time policy by the base's quantisation error
(the usual QLoRA caveat); it equals the unquantised base + adapter exactly.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from .trainer import CONFIG_FILE, last_checkpoint

logger = logging.getLogger("segzero_edge.train")

ADAPTER_CONFIG = "adapter_config.json"
#: Processor, tokenizer and generation files copied next to the merged weights.
SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def find_adapter(run: str | Path) -> Path:
    """The run's final adapter (RUN/), else its latest checkpoint's (an interrupted run)."""
    run = Path(run)
    if (run / ADAPTER_CONFIG).is_file():
        return run
    found = last_checkpoint(run)
    if found is not None and (found / ADAPTER_CONFIG).is_file():
        logger.warning("%s has no final adapter (run not finished); merging %s", run, found.name)
        return found
    raise FileNotFoundError(f"no LoRA adapter in {run} or its checkpoints: is it a finished training run?")


def base_model_of(run: str | Path, adapter_dir: Path) -> str:
    """The base the adapter was trained on: the run's saved config, else the adapter's own record."""
    from .config import load_config
    from .model import resolve_model_path

    saved = Path(run) / CONFIG_FILE
    if saved.is_file():
        return resolve_model_path(load_config(saved).model)
    recorded = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not recorded:
        raise ValueError(f"{adapter_dir / ADAPTER_CONFIG} names no base model; pass base=...")
    return recorded


def merge_adapter(
    run: str | Path, out: str | Path, *, dtype: str = "bfloat16", base: str | None = None, device: str = "cpu"
) -> Path:
    """Write base + adapter merged (`merge_and_unload`) to `out`, atomically; returns `out`."""
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    from .model import load_processor, torch_dtype

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose another --out or remove it")
    adapter_dir = find_adapter(run)
    base_path = base or base_model_of(run, adapter_dir)
    logger.info("merging %s into %s (%s)", adapter_dir, base_path, dtype)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        base_path, dtype=torch_dtype(dtype), device_map=device if device != "cpu" else None
    )
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        merged.save_pretrained(tmp)
        copied = _copy_side_files(base_path, tmp)
        if not {"tokenizer_config.json", "preprocessor_config.json"} <= set(copied):
            load_processor(base_path).save_pretrained(tmp)  # a Hub base: write the processor files ourselves
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("merged model written to %s", out)
    return out


def _copy_side_files(base_path: str, dest: Path) -> list[str]:
    """Copy tokenizer/processor/generation files from a local base dir; [] for a Hub id."""
    src = Path(base_path)
    if not src.is_dir():
        return []
    copied = []
    for name in SIDE_FILES:
        if (src / name).is_file() and not (dest / name).is_file():
            shutil.copy(src / name, dest / name)
            copied.append(name)
    return copied
