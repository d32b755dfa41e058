"""Seg-Zero GRPO with 4-bit QLoRA on one GPU (TRL + peft + bitsandbytes)."""

from __future__ import annotations

__all__: list[str] = []
