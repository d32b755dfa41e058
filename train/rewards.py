"""Seg-Zero's per-sample rewards in TRL's reward-function form.

TRL calls each reward function as `fn(prompts=..., completions=..., completion_ids=...,
**columns)` where every dataset column arrives as a list aligned with `completions`, and
logs each function under its `__name__` (`rewards/<name>/mean`). One adapter per component
keeps every Seg-Zero component visible on its own in the logs; their sum is the strict
`seg_zero` reward the advantages are computed from.

Ground truth comes from the dataset adapters' columns `gt_bbox` ([x1, y1, x2, y2]) and
`gt_points` ([[x, y], [x, y]]), in the reasoner's image space (840 in the recipe); a None
entry counts as missing and scores 0, as in Seg-Zero. The multi-object rewards
(`segzero_edge.rewards_multi.REWARDS_MULTI`) read the `solution` column instead (Seg-Zero's
JSON list). This module is torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from segzero_edge.rewards import REWARDS, SEG_ZERO_COMPONENTS, get_reward
from segzero_edge.rewards_multi import REWARDS_MULTI

TrlReward = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """The assistant text of one completion: a plain string, or TRL's conversational form
    `[{"role": "assistant", "content": str | [{"type": "text", "text": ...}, ...]}]`."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def _column(values: Sequence[Any] | None, n: int, name: str) -> Sequence[Any]:
    if values is None:
        return [None] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return values


def make_multi_reward(name: str) -> TrlReward:
    """The TRL adapter of the multi-object reward `name` (`segzero_edge.rewards_multi.REWARDS_MULTI`)."""
    fn = REWARDS_MULTI[name]

    def reward(completions: Sequence[Any], solution: Sequence[Any] | None = None, **_: Any) -> list[float]:
        solutions = _column(solution, len(completions), "solution")
        return [float(fn(completion_text(c), s)) for c, s in zip(completions, solutions, strict=True)]

    reward.__name__ = reward.__qualname__ = name  # TRL logs rewards/<__name__>/mean
    reward.__doc__ = f"TRL adapter of segzero_edge.rewards_multi {name!r}: (completions, solution) -> list[float]."
    return reward


def make_reward(name: str) -> TrlReward:
    """The TRL adapter of the registered reward `name` (`segzero_edge.rewards.REWARDS`, or
    `segzero_edge.rewards_multi.REWARDS_MULTI` for the multi-object ones)."""
    if name in REWARDS_MULTI and name not in REWARDS:
        return make_multi_reward(name)
    fn = get_reward(name)

    def reward(
        completions: Sequence[Any],
        gt_bbox: Sequence[Any] | None = None,
        gt_points: Sequence[Any] | None = None,
        **_: Any,
    ) -> list[float]:
        n = len(completions)
        boxes = _column(gt_bbox, n, "gt_bbox")
        points = _column(gt_points, n, "gt_points")
        return [
            float(fn(completion_text(c), b, p)) for c, b, p in zip(completions, boxes, points, strict=True)
        ]

    reward.__name__ = reward.__qualname__ = name  # TRL logs rewards/<__name__>/mean
    reward.__doc__ = (
        f"TRL adapter of segzero_edge.rewards {name!r}: (completions, gt_bbox, gt_points) -> list[float]."
    )
    return reward


def import_reward(spec: str) -> TrlReward:
    """A user reward given as `package.module:function`, already in TRL's form
    `fn(completions, **columns) -> list[float]` (logged under the function's name)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward {spec!r} is neither a registered name nor 'package.module:function'")
    fn = getattr(importlib.import_module(module_name), attr, None)
    if not callable(fn):
        raise ValueError(f"reward {spec!r}: {module_name} has no callable {attr!r}")
    return fn


def reward_functions(names: Sequence[str] = SEG_ZERO_COMPONENTS) -> list[TrlReward]:
    """One TRL reward function per entry, in order: a registered name (see
    `segzero_edge.rewards.REWARDS`) or an import spec `package.module:function`."""
    if not names:
        raise ValueError(f"at least one reward is needed; known: {', '.join(sorted({**REWARDS, **REWARDS_MULTI}))}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward names repeat: {list(names)}; each would be logged (and summed) twice")
    return [import_reward(name) if ":" in name else make_reward(name) for name in names]
