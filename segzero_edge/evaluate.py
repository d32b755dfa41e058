"""Run a pipeline over an evaluation set and score it as Seg-Zero does.

Results stream to a JSONL file, one line per sample (query, thinking, answer, I, U,
timings), after a header recording what produced them (`eval_results`). The file is
resumable by the same run only: samples already in it are read back, not recomputed.

The answer format is the pipeline's (`pipeline.answer_format`). Multi-object answers are
scored as Seg-Zero's `evaluation_visionreasoner.py` scores them (`segzero_edge.eval_multi`):
the query is normalised as that script does, the mask is the union of the objects' masks,
the box metric is reported where the data has a `bbox` column, and VisionReasoner's
no-target handling (with N-Acc) is available behind `no_target=True`. The format and those
switches are part of the header's provenance, so a file is never resumed under other ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import eval_results
from .answer import AnswerError, parse_multi_answer
from .eval_multi import BOX_METRICS, MultiMeter, SampleScore, score_sample
from .eval_results import Provenance
from .evaldata import EvalSample
from .file_lock import exclusive_lock
from .metrics import IoUMeter, intersection_union
from .pipeline import ReasoningPipeline, Result
from .prompts import check_answer_format, evaluation_query

#: Keys every multi-object record carries (besides id, intersection, union).
MULTI_KEYS = ("iou", "box_hit", "no_target_hit")


@dataclass
class EvalSummary:
    giou: float
    ciou: float
    count: int
    skipped: int
    failed: int
    resumed: int
    box_accuracy: float | None = None  # multi: share of box hits among samples with a GT box
    box_count: int = 0
    n_acc: float | None = None  # multi + no_target: share of no-target samples answered with no box
    no_target_count: int = 0

    def line(self) -> str:
        text = f"gIoU={self.giou:.4f} cIoU={self.ciou:.4f} n={self.count}"
        if self.box_accuracy is not None:
            text += f" box={self.box_accuracy:.4f} (n={self.box_count})"
        if self.n_acc is not None:
            text += f" N-Acc={self.n_acc:.4f} (n={self.no_target_count})"
        return text


def format_settings(answer_format: str, no_target: bool = False, box_metric: str = "any") -> dict[str, Any]:
    """The scoring settings an evaluation records in its provenance (`Provenance` fields).

    Single-format runs record None for the multi-only switches, and refuse them when set.
    """
    check_answer_format(answer_format)
    if box_metric not in BOX_METRICS:
        raise ValueError(f"box_metric must be one of {BOX_METRICS}, got {box_metric!r}")
    if answer_format == "single":
        if no_target or box_metric != "any":
            raise ValueError("no_target and box_metric apply to multi-object answers; this pipeline answers 'single'")
        return {"answer_format": "single", "no_target": None, "box_metric": None}
    return {"answer_format": answer_format, "no_target": bool(no_target), "box_metric": box_metric}


def predicted_boxes(result: Result, width: int, height: int) -> list[tuple[int, ...]]:
    """The multi answer's boxes rescaled to the image, unclipped, as Seg-Zero's evaluation
    reads them for its box metric; [] for a failed parse."""
    if not result.ok:
        return []
    try:
        answer = parse_multi_answer(result.answer_text).rescale(width, height)
    except AnswerError:
        return []
    return [tuple(o.bbox) for o in answer.objects]


class _SingleScorer:
    """Seg-Zero's `evaluation.py`: I and U of the one mask."""

    keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.meter = IoUMeter()

    def resume(self, record: dict) -> None:
        self.meter.add(record["intersection"], record["union"])

    def score(self, pipeline: ReasoningPipeline, sample: EvalSample) -> tuple[Result, dict]:
        result = pipeline.segment(sample.image, sample.query)
        inter, union = intersection_union(result.mask if result.ok else None, sample.mask, sample.ignore)
        self.meter.add(inter, union)
        return result, {
            "bbox": list(result.bbox) if result.bbox else None,
            "points": [list(p) for p in result.points] if result.points else None,
            "intersection": inter,
            "union": union,
        }

    def summary(self, failed: int, resumed: int) -> EvalSummary:
        m = self.meter
        return EvalSummary(m.giou, m.ciou, m.count, m.skipped, failed, resumed)


class _MultiScorer:
    """Seg-Zero's `evaluation_visionreasoner.py`: the union mask, the box metric, N-Acc."""

    keys = MULTI_KEYS

    def __init__(self, no_target: bool, box_metric: str) -> None:
        self.meter = MultiMeter()
        self.no_target = no_target
        self.box_metric = box_metric

    def resume(self, record: dict) -> None:
        self.meter.add(
            SampleScore(record["intersection"], record["union"], record["iou"], record["box_hit"], record["no_target_hit"])
        )

    def score(self, pipeline: ReasoningPipeline, sample: EvalSample) -> tuple[Result, dict]:
        result = pipeline.segment(sample.image, evaluation_query(sample.query, "multi"))
        height, width = sample.image.shape[:2]
        score = score_sample(
            result.mask if result.ok else None, predicted_boxes(result, width, height), sample.mask, sample.bbox,
            sample.ignore, no_target=self.no_target, box_metric=self.box_metric,
        )  # fmt: skip
        self.meter.add(score)
        return result, {
            "objects": [{"bbox": list(o.bbox), "point": list(o.points[0]), "score": o.score} for o in result.objects],
            "intersection": score.intersection,
            "union": score.union,
            "iou": score.iou,
            "box_hit": score.box,
            "no_target_hit": score.no_target_hit,
        }

    def summary(self, failed: int, resumed: int) -> EvalSummary:
        m = self.meter
        return EvalSummary(
            m.giou, m.ciou, m.count, m.skipped, failed, resumed,
            box_accuracy=m.box_accuracy, box_count=m.box_count,
            n_acc=m.n_acc if self.no_target else None, no_target_count=m.no_target_count,
        )  # fmt: skip


def evaluate(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None = None,
    *,
    progress: bool = True,
    total: int | None = None,
    provenance: Provenance | None = None,
    restart: bool = False,
    no_target: bool = False,
    box_metric: str = "any",
) -> EvalSummary:
    """Score `samples`; a sample whose parse or segmentation failed counts I=0, U=|GT|.

    With `out`, results stream to a resumable JSONL file whose header records `provenance`
    plus this run's answer format and scoring switches (`format_settings`); resuming a file
    written with a different provenance raises `ResultsMismatch` (`restart` starts it over).
    A lock next to it keeps a second evaluation from appending at once.

    `no_target` and `box_metric` apply to multi-object pipelines only (see
    `segzero_edge.eval_multi`).
    """
    settings = format_settings(getattr(pipeline, "answer_format", "single"), no_target, box_metric)
    # The header describes what this call scores, whatever the caller filled in.
    provenance = dataclasses.replace(provenance or Provenance(), **settings)
    scorer = _SingleScorer() if settings["answer_format"] == "single" else _MultiScorer(no_target, box_metric)
    done: set[str] = set()
    failed = 0
    with ExitStack() as stack:
        if out is not None:
            out = Path(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(out.parent / f".{out.name}.lock", f"--out {out}"))
            for record in eval_results.prepare(out, provenance, restart=restart, keys=scorer.keys):
                done.add(record["id"])
                scorer.resume(record)
                failed += not record.get("ok", False)
        resumed = len(done)
        failed = _run(pipeline, scorer, samples, out, done, failed, progress, total)
    return scorer.summary(failed, resumed)


def _run(
    pipeline: ReasoningPipeline,
    scorer: _SingleScorer | _MultiScorer,
    samples: Iterable[EvalSample],
    out: Path | None,
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
            result, scores = scorer.score(pipeline, sample)
            failed += not result.ok
            if handle is not None:
                record = {
                    "id": sample.sample_id,
                    "query": sample.query,
                    "ok": result.ok,
                    "error": result.error,
                    "think": result.thinking,
                    "answer": result.answer_text,
                    **scores,
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
