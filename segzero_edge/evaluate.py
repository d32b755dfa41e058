"""Run a pipeline over an evaluation set and score it as Seg-Zero does.

Results stream to a JSONL file, one line per sample (query, thinking, answer, I, U,
timings). The file is resumable: samples already in it are read back, not recomputed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .evaldata import EvalSample
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


def _read_done(out: Path, meter: IoUMeter) -> tuple[set[str], int]:
    """Re-score the finished samples of a previous run; drop a torn last line."""
    done: set[str] = set()
    failed = 0
    if not out.is_file():
        return done, failed
    good_lines = []
    with open(out) as handle:
        for line in handle:
            try:
                record = json.loads(line)
                sample_id, inter, union = record["id"], record["intersection"], record["union"]
            except (json.JSONDecodeError, KeyError, TypeError):
                break  # an interrupted write: everything after it is recomputed
            good_lines.append(line if line.endswith("\n") else line + "\n")
            done.add(sample_id)
            meter.add(inter, union)
            failed += not record.get("ok", False)
    with open(out, "w") as handle:  # rewrite without the torn tail
        handle.writelines(good_lines)
    return done, failed


def evaluate(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None = None,
    *,
    progress: bool = True,
    total: int | None = None,
) -> EvalSummary:
    """Score `samples`; a sample whose parse or segmentation failed counts I=0, U=|GT|."""
    meter = IoUMeter()
    done: set[str] = set()
    failed = 0
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        done, failed = _read_done(out, meter)
    resumed = len(done)
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
    return EvalSummary(meter.giou, meter.ciou, meter.count, meter.skipped, failed, resumed)
