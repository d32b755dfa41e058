"""Checkpoints that are complete or absent, and a resume that takes the newest complete one.

transformers' `Trainer._save_checkpoint` (which TRL's GRPOTrainer extends) writes straight
into `RUN/checkpoint-N`: a kill mid-save leaves an empty or partial folder that
`get_last_checkpoint` then picks, so `--resume` fails, and a fresh start refuses the folder,
until someone deletes it by hand.

The hook here is `Trainer._get_output_dir`, the one place `_save_checkpoint` (and TRL's
override) asks where the run lives: for the duration of one save, `AtomicCheckpoints`
answers `RUN/.staging-checkpoint-N`, so everything the trainer writes lands in
`RUN/.staging-checkpoint-N/checkpoint-N`; once every process is done, the main process
renames that folder to `RUN/checkpoint-N` (one atomic rename on the same filesystem) and
rotates old checkpoints itself. A `checkpoint-N` therefore exists only complete.

`prepare_resume(run)` removes staging folders of killed saves and moves any incomplete
`checkpoint-N` (left by an older version, or copied in half) aside to
`RUN/.incomplete-checkpoint-N`, naming each, and returns the newest complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("segzero_edge.train")

PREFIX = "checkpoint"
STAGING = ".staging-"
INCOMPLETE = ".incomplete-"
TRAINER_STATE = "trainer_state.json"  # written last by Trainer._save_checkpoint
#: Any one of these holds the weights (peft adapter or a full model).
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin")
_STEP = re.compile(rf"^{PREFIX}-(\d+)$")


def is_complete(folder: Path) -> bool:
    """A checkpoint holds readable trainer state and its weights."""
    try:
        state = json.loads((folder / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state and any((folder / w).is_file() for w in WEIGHTS)


@dataclass
class Scan:
    """What a run folder holds: complete checkpoints (oldest first), incomplete ones, and
    staging folders of saves that never finished."""

    complete: list[Path] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)
    staging: list[Path] = field(default_factory=list)

    @property
    def newest(self) -> Path | None:
        return self.complete[-1] if self.complete else None


def scan(run: str | Path) -> Scan:
    run = Path(run)
    out = Scan()
    if not run.is_dir():
        return out
    steps = []
    for item in run.iterdir():
        if item.name.startswith(STAGING) and item.is_dir():
            out.staging.append(item)
        elif (match := _STEP.match(item.name)) and item.is_dir():
            steps.append((int(match.group(1)), item))
    for _, item in sorted(steps):
        (out.complete if is_complete(item) else out.incomplete).append(item)
    return out


def prepare_resume(run: str | Path, *, tidy: bool = True) -> Scan:
    """Scan `run`; with `tidy` (the main process only), remove staging folders and move
    incomplete checkpoints aside, logging each by name. Returns the scan (before tidying:
    `incomplete` and `staging` name what was skipped)."""
    found = scan(run)
    if not tidy:
        return found
    for folder in found.staging:
        shutil.rmtree(folder, ignore_errors=True)
        logger.warning("removed %s: a checkpoint save that never finished (the run was killed mid-save)", folder)
    for folder in found.incomplete:
        aside = folder.with_name(f"{INCOMPLETE}{folder.name}")
        n = 1
        while aside.exists():
            aside, n = folder.with_name(f"{INCOMPLETE}{folder.name}.{n}"), n + 1
        os.replace(folder, aside)
        logger.warning("skipped incomplete checkpoint %s (no trainer state or weights); moved it to %s", folder, aside)
    return found


class AtomicCheckpoints:
    """Mixin for a `transformers.Trainer` subclass: checkpoints are written to a staging
    folder and renamed into place complete (see the module doc). Put it first in the bases."""

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run = Path(self._get_output_dir(trial=trial))  # type: ignore[attr-defined]
        name = f"{PREFIX}-{self.state.global_step}"  # type: ignore[attr-defined]
        staging = run / f"{STAGING}{name}"
        args = self.args  # type: ignore[attr-defined]
        if args.should_save:
            shutil.rmtree(staging, ignore_errors=True)  # a save of this step that was killed
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]
        self._get_output_dir = lambda trial=None: str(staging)  # this save's run folder
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]
        if not args.should_save:
            return
        final = run / name
        if final.exists():  # the same step saved again: swap, never merge two saves
            trash = run / f"{STAGING}old-{name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(final, trash)
            os.replace(staging / name, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging / name, final)
        shutil.rmtree(staging, ignore_errors=True)
        best = self.state.best_model_checkpoint  # type: ignore[attr-defined]
        if best and Path(best).parent == staging:
            self.state.best_model_checkpoint = str(run / Path(best).name)  # type: ignore[attr-defined]
        try:
            from transformers.trainer_utils import rotate_checkpoints
        except ImportError:  # transformers releases that keep it as a Trainer method
            self._rotate_checkpoints(use_mtime=True, output_dir=str(run))  # type: ignore[attr-defined]
            return
        rotate_checkpoints(
            output_dir=str(run),
            save_total_limit=args.save_total_limit,
            best_model_checkpoint=self.state.best_model_checkpoint,  # type: ignore[attr-defined]
            use_mtime=True,
        )


_CLASSES: dict[type, type] = {}


def atomic_trainer(base: type) -> type:
    """`base` (e.g. trl.GRPOTrainer) with `AtomicCheckpoints` mixed in (one class per base)."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Atomic{base.__name__}", (AtomicCheckpoints, base), {})
    return _CLASSES[base]
