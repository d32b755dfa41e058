"""Run a pipeline over an evaluation set and score it as Seg-Zero does.

Results stream to a JSONL file, one line per sample (query, thinking, answer, I, U,
timings), after a header recording what produced them (`eval_results`). The file is
resumable by the same run only: samples already in it are read back, not recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from . import eval_results
from .eval_results import Provenance
from .evaldata import EvalSample
from .file_lock import exclusive_lock
from .metrics import IoUMeter, intersection_union
from .pipeline import ReasoningPipeline


@dataclass
class EvalSummary:
    giou: float
    ciou: float
    count: int
    skipped: int
    failed: int
    resumed: int

    def line(self) -> str:
        return f"gIoU={self.giou:.4f} cIoU={self.ciou:.4f} n={self.count}"


def evaluate(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None = None,
    *,
    progress: bool = True,
    total: int | None = None,
    provenance: Provenance | None = None,
    restart: bool = False,
) -> EvalSummary:
    """Score `samples`; a sample whose parse or segmentation failed counts I=0, U=|GT|.

    With `out`, results stream to a resumable JSONL file whose header records `provenance`;
    resuming a file written with a different provenance raises `ResultsMismatch` (`restart`
    starts it over). A lock next to it keeps a second evaluation from appending at once.
    """
    meter = IoUMeter()
    done: set[str] = set()
    failed = 0
    with ExitStack() as stack:
        if out is not None:
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(out.parent / f".{out.name}.lock", f"--out {out}"))
            for record in eval_results.prepare(out, provenance, restart=restart):
                done.add(record["id"])
                meter.add(record["intersection"], record["union"])
                failed += not record.get("ok", False)
        resumed = len(done)
        failed = _run(pipeline, samples, out, meter, done, failed, progress, total)
    return EvalSummary(meter.giou, meter.ciou, meter.count, meter.skipped, failed, resumed)


def _run(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None,
    meter: IoUMeter,
    done: set[str],
    failed: int,
    progress: bool,
    total: int | None,
) -> int:
    """Score the samples not in `done`, appending one fsynced line each to `out`; returns
    the updated failure count."""
    handle = open(out, "a") if out is not None else None
    try:
        iterator = samples
        if progress:
            from tqdm import tqdm

            iterator = tqdm(samples, total=total, desc="eval", unit="sample")
        for sample in iterator:
            if sample.sample_id in done:
                continue
            result = pipeline.segment(sample.image, sample.query)
            pred = result.mask if result.ok else None
            inter, union = intersection_union(pred, sample.mask, sample.ignore)
            meter.add(inter, union)
            failed += not result.ok
            if handle is not None:
                record = {
                    "id": sample.sample_id,
                    "query": sample.query,
                    "ok": result.ok,
                    "error": result.error,
                    "think": result.thinking,
                    "answer": result.answer_text,
                    "bbox": list(result.bbox) if result.bbox else None,
                    "points": [list(p) for p in result.points] if result.points else None,
                    "intersection": inter,
                    "union": union,
                    "timings": result.timings,
                }
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            done.add(sample.sample_id)
    finally:
        if handle is not None:
            handle.close()
    return failed
