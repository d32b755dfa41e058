"""Run a pipeline over an evaluation set and score it as Seg-Zero does.

Results stream to a JSONL file, one line per sample (query, thinking, answer, I, U,
timings). The file is resumable: samples already in it are read back, not recomputed.

The answer format is the pipeline's (`pipeline.answer_format`). Multi-object answers are
scored as Seg-Zero's `evaluation_visionreasoner.py` scores them (`segzero_edge.eval_multi`):
the query is normalised as that script does, the mask is the union of the objects' masks,
the box metric is reported where the data has a `bbox` column, and VisionReasoner's
no-target handling (with N-Acc) is available behind `no_target=True`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .answer import AnswerError, parse_multi_answer
from .eval_multi import BOX_METRICS, MultiMeter, SampleScore, score_sample
from .evaldata import EvalSample
from .metrics import IoUMeter, intersection_union
from .pipeline import ReasoningPipeline, Result
from .prompts import evaluation_query


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
            if "settings" in record:  # only multi-object evaluations write settings
                raise ValueError(f"{out} was written by a multi-object evaluation: use another --out")
            good_lines.append(line if line.endswith("\n") else line + "\n")
            done.add(sample_id)
            meter.add(inter, union)
            failed += not record.get("ok", False)
    with open(out, "w") as handle:  # rewrite without the torn tail
        handle.writelines(good_lines)
    return done, failed


def _read_done_multi(out: Path, meter: MultiMeter, settings: dict) -> tuple[set[str], int]:
    """`_read_done` for multi-object records, which carry their scores and settings."""
    done: set[str] = set()
    failed = 0
    if not out.is_file():
        return done, failed
    good_lines = []
    with open(out) as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # an interrupted write: everything after it is recomputed
            try:
                sample_id = record["id"]
                score = SampleScore(
                    record["intersection"], record["union"], record["iou"], record["box_hit"], record["no_target_hit"]
                )
                written = {key: record["settings"][key] for key in settings}
            except (KeyError, TypeError) as exc:
                raise ValueError(
                    f"{out} holds a record without multi-object scores ({exc}); it was not written by a "
                    "multi-object evaluation: use another --out"
                ) from None
            if written != settings:
                raise ValueError(
                    f"{out} was written with {written}, not {settings}: use another --out or the same options"
                )
            good_lines.append(line if line.endswith("\n") else line + "\n")
            done.add(sample_id)
            meter.add(score)
            failed += not record.get("ok", False)
    with open(out, "w") as handle:
        handle.writelines(good_lines)
    return done, failed


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


def evaluate(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None = None,
    *,
    progress: bool = True,
    total: int | None = None,
    no_target: bool = False,
    box_metric: str = "any",
) -> EvalSummary:
    """Score `samples`; a sample whose parse or segmentation failed counts I=0, U=|GT|.

    `no_target` and `box_metric` apply to multi-object pipelines only (see
    `segzero_edge.eval_multi`).
    """
    answer_format = getattr(pipeline, "answer_format", "single")
    if answer_format == "multi":
        return _evaluate_multi(pipeline, samples, out, progress, total, no_target, box_metric)
    if no_target or box_metric != "any":
        raise ValueError("no_target and box_metric apply to multi-object answers; this pipeline answers 'single'")
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


def _evaluate_multi(
    pipeline: ReasoningPipeline,
    samples: Iterable[EvalSample],
    out: Path | None,
    progress: bool,
    total: int | None,
    no_target: bool,
    box_metric: str,
) -> EvalSummary:
    if box_metric not in BOX_METRICS:
        raise ValueError(f"box_metric must be one of {BOX_METRICS}, got {box_metric!r}")
    settings = {"answer_format": "multi", "no_target": no_target, "box_metric": box_metric}
    meter = MultiMeter()
    done: set[str] = set()
    failed = 0
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        done, failed = _read_done_multi(out, meter, settings)
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
            result = pipeline.segment(sample.image, evaluation_query(sample.query, "multi"))
            height, width = sample.image.shape[:2]
            boxes = predicted_boxes(result, width, height)
            score = score_sample(
                result.mask if result.ok else None, boxes, sample.mask, sample.bbox, sample.ignore,
                no_target=no_target, box_metric=box_metric,
            )  # fmt: skip
            meter.add(score)
            failed += not result.ok
            if handle is not None:
                record = {
                    "id": sample.sample_id,
                    "query": sample.query,
                    "ok": result.ok,
                    "error": result.error,
                    "think": result.thinking,
                    "answer": result.answer_text,
                    "objects": [
                        {"bbox": list(o.bbox), "point": list(o.points[0]), "score": o.score} for o in result.objects
                    ],
                    "intersection": score.intersection,
                    "union": score.union,
                    "iou": score.iou,
                    "box_hit": score.box,
                    "no_target_hit": score.no_target_hit,
                    "settings": settings,
                    "timings": result.timings,
                }
                handle.write(json.dumps(record) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            done.add(sample.sample_id)
    finally:
        if handle is not None:
            handle.close()
    return EvalSummary(
        meter.giou, meter.ciou, meter.count, meter.skipped, failed, resumed,
        box_accuracy=meter.box_accuracy, box_count=meter.box_count,
        n_acc=meter.n_acc if no_target else None, no_target_count=meter.no_target_count,
    )  # fmt: skip
