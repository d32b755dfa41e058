"""Helpers shared by the embedded-default recipe scripts: device choice, seeding, step timing.

The scripts run from the repo root as `python recipes/embedded/<script>.py`; this file sits
beside them, so `import common` works without installing anything.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def pick_device(requested: str = "auto") -> str:
    """'cuda' when asked for or available (auto), else 'cpu'; an explicit 'cuda' without CUDA is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but torch sees no CUDA GPU; use --device cpu or auto")
    if requested not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    return requested


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def hardware(device: str) -> str:
    """One line naming where a step ran (GPU model, or the CPU and its core count)."""
    if device == "cuda":
        import torch

        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()} cores"


@contextmanager
def timed(step: str, log: Path | None = None, **extra: Any) -> Iterator[dict[str, Any]]:
    """Time a step (wall and this process's CPU seconds); print it and append it to `log` (jsonl)."""
    import resource

    record: dict[str, Any] = {"step": step, **extra}
    wall, cpu = time.perf_counter(), time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child0 = children.ru_utime + children.ru_stime
    try:
        yield record
    finally:
        record["wall_s"] = round(time.perf_counter() - wall, 1)
        record["process_cpu_s"] = round(time.process_time() - cpu, 1)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        # worker processes (data rendering, preprocessing) once they have been joined
        record["children_cpu_s"] = round(children.ru_utime + children.ru_stime - child0, 1)
        print(f"[time] {step}: wall {record['wall_s']} s, cpu {record['process_cpu_s']} s "
              f"(+{record['children_cpu_s']} s in workers) "
              f"{json.dumps({k: v for k, v in record.items() if k not in ('step', 'wall_s', 'process_cpu_s', 'children_cpu_s')})}",
              flush=True)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    return path


class StepBudget:
    """Fixes a step count: the given one, or (steps=0) as many as fit in `minutes`, from the speed
    measured over the first `probe` steps. The chosen count is printed, so a run can be repeated
    with exactly that `--steps`."""

    def __init__(self, steps: int, minutes: float, probe: int = 20) -> None:
        if steps < 0 or (steps == 0 and minutes <= 0):
            raise ValueError(f"give steps > 0, or steps=0 with minutes > 0; got steps={steps}, minutes={minutes}")
        self.steps, self.minutes, self.probe = steps, minutes, probe
        self.fixed = steps > 0
        self._start = time.perf_counter()

    def total(self, done: int) -> int:
        """The planned number of steps, known after `probe` steps when it is derived from time."""
        if self.fixed:
            return self.steps
        if time.perf_counter() - self._start > 1.15 * self.minutes * 60:
            print(f"[budget] over {self.minutes} min by 15% at step {done}: stopping "
                  f"(repeat with --steps {done})", flush=True)
            self.steps = done
            return done
        if done < self.probe:
            return 10**9
        if self.steps == 0:
            per_step = (time.perf_counter() - self._start) / done
            self.steps = max(done + 1, int(self.minutes * 60 / per_step))
            print(f"[budget] {per_step * 1e3:.0f} ms/step -> {self.steps} steps fit in {self.minutes} min "
                  f"(repeat with --steps {self.steps})", flush=True)
        return self.steps


def warmup_cosine_lr(step: int, total: int, peak: float, warmup: int, floor: float = 0.0) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine down to `floor` x peak at `total`.
    While StepBudget has not fixed the total yet (it reports 10**9), the rate stays at peak."""
    lr = peak * min(1.0, (step + 1) / warmup)
    if step >= warmup and total < 10**9:
        progress = (step - warmup) / max(1, total - warmup)
        lr = peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --- resumable training state ------------------------------------------------------------------


def cpu_bf16(device: str, enabled: bool = True) -> bool:
    """bf16 autocast on the CPU where the CPU has native bf16 (AVX-512 BF16 / AMX): measured 2.8x
    faster than fp32 for the reasoner's language model on this 2-core box, with the loss curve
    checked against fp32 (recipes/embedded/README.md). On CUDA autocast is always bf16."""
    if not enabled:
        return False
    if device == "cuda":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Resumable:
    """A training loop's state in one file (`path`): model and optimizer state, step, RNG
    states and the log. Written atomically (temp file + rename) every `every_s` seconds and
    at the end, so a killed stage resumes from its last save and never from a torn file.
    Loaded with `torch.load(weights_only=True)`: tensors, numbers, strings and containers only."""

    def __init__(self, path: Path, every_s: float = 180.0) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self._last = time.monotonic()

    def restore(self, model, opt, rng=None) -> tuple[int, list[dict[str, Any]]]:
        """(step, log) of the saved state loaded into `model`/`opt`/`rng`, or (0, []) when none."""
        import torch

        if not self.path.is_file():
            return 0, []
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if rng is not None and "numpy_rng" in state:
            rng.bit_generator.state = json.loads(state["numpy_rng"])
        print(f"[resume] {self.path} at step {state['step']}", flush=True)
        return int(state["step"]), list(state["log"])

    def save(self, step: int, model, opt, rng=None, log: list[dict[str, Any]] | None = None) -> None:
        import torch

        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                 "torch_rng": torch.get_rng_state(), "log": list(log or [])}
        if rng is not None:
            state["numpy_rng"] = json.dumps(rng.bit_generator.state)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
        self._last = time.monotonic()

    def maybe_save(self, step: int, model, opt, rng=None, log: list[dict[str, Any]] | None = None) -> bool:
        if time.monotonic() - self._last < self.every_s:
            return False
        self.save(step, model, opt, rng, log)
        return True
