"""When to stop a generation early: a wall-clock budget and a repetition stop.

A robot needs an answer in bounded time. Two things make a generation run long:

- **A slow machine or a long answer.** `max_time_s` bounds the wall clock; when it runs out,
  decoding stops after the current token and the query fails with the partial text.
- **A runaway answer.** Small or quantized reasoners, shown an image unlike their training
  data, can fall into a loop ("a red circle, a red circle, ...") and write until
  `max_new_tokens` (1,024 by default). `RepetitionStop` ends such a loop once it is
  unmistakable: the newest tokens are one block of at most `max_period` tokens repeated
  `min_repeats` times back to back, covering at least `min_span` tokens. A real Seg-Zero
  answer (a sentence or two of reasoning, then one JSON object) never repeats a block that
  way; a loop is caught after about min_repeats × period tokens.

`StopWatch` applies both, token by token, in O(max_period) numpy work per token. The
runtime's reasoner calls it from its per-token hook; the pipeline turns a stop into
`Result(ok=False, error=...)` carrying the partial text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RepetitionStop:
    """Stop a generation whose newest tokens repeat one block back to back."""

    min_repeats: int = field(default=4, metadata={"help": "times a block must occur back to back"})
    max_period: int = field(default=64, metadata={"help": "longest block looked for, in tokens"})
    min_span: int = field(default=48, metadata={"help": "the repeated run must cover at least this many tokens"})

    def __post_init__(self) -> None:
        if self.min_repeats < 2:
            raise ValueError(f"min_repeats must be >= 2 (a block and one repeat), got {self.min_repeats}")
        if self.max_period < 1:
            raise ValueError(f"max_period must be >= 1, got {self.max_period}")
        if self.min_span < 2:
            raise ValueError(f"min_span must be >= 2, got {self.min_span}")


class StopWatch:
    """Feed it each new token (`step`); it returns why to stop, or None.

    Repetition: for every period p <= max_period it keeps the length of the current run of
    positions i with ids[i] == ids[i - p]. A run of length L means the last L + p tokens are
    p-periodic, i.e. the block repeats (L + p) / p times; it fires when that is at least
    `min_repeats` and L + p >= `min_span`.
    """

    def __init__(
        self,
        *,
        max_time_s: float | None = None,
        repetition: RepetitionStop | None = None,
        start: float | None = None,
    ) -> None:
        if max_time_s is not None and not max_time_s > 0:
            raise ValueError(f"max_time_s must be > 0 seconds (None: no budget), got {max_time_s!r}")
        self.start = time.perf_counter() if start is None else start
        self.max_time_s = max_time_s
        self.repetition = repetition
        self.count = 0
        if repetition is not None:
            self._periods = np.arange(1, repetition.max_period + 1)
            self._runs = np.zeros(repetition.max_period, np.int64)
            self._history = np.full(repetition.max_period + 1, -1, np.int64)  # ring buffer of recent ids

    def step(self, token: int) -> str | None:
        """Record one generated token; the reason to stop now, or None to go on."""
        self.count += 1
        if self.repetition is not None:
            reason = self._repetition(int(token))
            if reason is not None:
                return reason
        if self.max_time_s is not None:
            elapsed = time.perf_counter() - self.start
            if elapsed >= self.max_time_s:
                return f"time budget of {self.max_time_s:g} s ran out after {self.count} tokens ({elapsed:.2f} s)"
        return None

    def _repetition(self, token: int) -> str | None:
        rule, size = self.repetition, self._history.shape[0]
        assert rule is not None
        n = self.count - 1  # index of this token
        # ids[n - p] for every p (-1, never equal to a real id, before the start)
        previous = self._history[(n - self._periods) % size]
        previous[self._periods > n] = -1
        self._runs = np.where(previous == token, self._runs + 1, 0)
        self._history[n % size] = token
        span = self._runs + self._periods
        hit = (span >= rule.min_span) & (span >= rule.min_repeats * self._periods)
        if not hit.any():
            return None
        p = int(self._periods[np.argmax(hit)])  # the shortest period that fires
        return (
            f"repetition stop: a {p}-token block repeated {int(span[p - 1]) // p} times in a row "
            f"(cut after {self.count} tokens; RepetitionStop(min_repeats={rule.min_repeats}, "
            f"max_period={rule.max_period}, min_span={rule.min_span}))"
        )


class GenerationStopped(Exception):
    """Raised from a per-token hook to end a generation early; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
