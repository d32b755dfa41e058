"""Trainer callbacks that make runs trustworthy: save-and-stop on SIGTERM/SIGINT, and a CSV of
every reward component, KL, completion length and step time (`RUN/metrics.csv`)."""

from __future__ import annotations

import csv
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .plot import METRICS_FILE

logger = logging.getLogger("segzero_edge.train")


class SignalCheckpointCallback(TrainerCallback):
    """On SIGTERM/SIGINT, finish the current optimizer step, save a checkpoint and stop.

    A step (generation + backward) can take minutes on a GPU, so the signal only sets a flag
    that `on_step_end` turns into `should_save` + `should_training_stop`. A second signal
    restores the default handler's behaviour (SIGINT raises KeyboardInterrupt at once).
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)):
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # second signal: stop waiting
            self._restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        logger.warning(
            "%s received: saving a checkpoint after this step, then stopping", signal.Signals(signum).name
        )

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            logger.warning("training outside the main thread: SIGTERM/SIGINT will not save a checkpoint")
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._restore()


def metric_columns(reward_names: list[str]) -> list[str]:
    """The CSV header: fixed columns plus one per reward component."""
    return [
        "step",
        "epoch",
        "time",
        "wall_s",
        "step_time",
        "loss",
        "reward",
        "reward_std",
        *[f"rewards/{name}/mean" for name in reward_names],
        "kl",
        "completions/mean_length",
        "completions/clipped_ratio",
        "entropy",
        "learning_rate",
        "grad_norm",
    ]


class MetricsCsvCallback(TrainerCallback):
    """Append one row per training log to `RUN/metrics.csv` (values TRL logs; blank if absent).

    `wall_s` is the wall-clock time since the previous row (or the start); `step_time` is
    TRL's own per-step timer (generation + scoring + forward/backward). On resume, rows past
    the checkpoint's step are dropped so that the file describes one consistent run.
    """

    def __init__(self, run_dir: str | Path, reward_names: list[str]):
        self.path = Path(run_dir) / METRICS_FILE
        self.columns = metric_columns(reward_names)
        self._last = time.time()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not args.should_save:  # only the main process writes
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
                header = list(rows[0].keys()) if rows else self.columns
            if header != self.columns:
                raise ValueError(
                    f"{self.path} has columns {header}, this run logs {self.columns}: the reward list changed; "
                    "use a new output_dir"
                )
            kept = [row for row in rows if int(row["step"]) <= state.global_step]
            if len(kept) != len(rows):
                logger.info(
                    "metrics.csv: dropped %d rows past step %d (resumed run)",
                    len(rows) - len(kept),
                    state.global_step,
                )
            self._write(kept, mode="w")
        else:
            self._write([], mode="w")
        self._last = time.time()

    def _write(self, rows: list[dict], mode: str) -> None:
        with self.path.open(mode, newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not args.should_save or not logs or "loss" not in logs:  # skip the end-of-train summary
            return
        now = time.time()
        row = {key: logs.get(key, "") for key in self.columns}
        row.update(step=state.global_step, epoch=logs.get("epoch", state.epoch), time=f"{now:.3f}")
        row["wall_s"] = f"{now - self._last:.3f}"
        self._last = now
        self._write([row], mode="a")
