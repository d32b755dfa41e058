"""Export reasoners (with the trained segmenter) to engine directories and score them through the
runtime on the val / test / zero-shot splits, as `segzero-edge eval` does, with per-family figures.

    python recipes/embedded/export_and_eval.py --run runs/embedded --models sft=sft/model,grpo=grpo/merged

Each model is exported to RUN/engines/NAME (manifest.json last) and run on the first `limit`
rows of RUN/data/{split}.parquet through `segzero_edge.evaluate` (per-sample JSONL, resumable).
Reported per split and model: gIoU, cIoU, the share of answers that parse, the reasoner's mean
box IoU against the ground truth (840 space), gIoU per query family, and for every later model
the paired bootstrap 95% interval of its gIoU gain over the first model. The segmenter alone,
prompted with the ground-truth box and two reference points, is scored on val and test. Writes
RUN/eval/summary.json (+ .md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed, write_json
from grounded_text import grounded_diagnosis

#: Per-sample checks averaged into the summary when every sample has them (scene truth given).
DIAGNOSTICS = ("localised", "right_object", "listing_names_right", "named_target", "answer_copies_named")


@dataclass
class EvalConfig:
    run: Path = field(metadata={"help": "run dir with the stage outputs and data/"})
    models: str = field(default="sft=sft/model,grpo=grpo/merged",
                        metadata={"help": "NAME=checkpoint (relative to RUN) pairs; the first is the baseline"})
    segmenter: str = field(default="segmenter/model", metadata={"help": "segmenter checkpoint (relative to RUN)"})
    reasoner_precision: str = field(default="int8", metadata={"help": "exported reasoner precision"})
    segmenter_precision: str = field(default="fp32", metadata={"help": "exported segmenter precision"})
    limit: int = field(default=300, metadata={"help": "samples per split (the first N rows)"})
    splits: str = field(default="val,test,zeroshot", metadata={"help": "comma-separated splits"})
    max_new_tokens: int = field(default=512, metadata={"help": "reasoner token budget (grounded completions: < 400)"})
    bootstrap: int = field(default=10000, metadata={"help": "bootstrap resamples for the gain intervals"})
    force_export: bool = field(default=False, metadata={"help": "re-export even when the engine dir exists"})

    def model_paths(self) -> dict[str, Path]:
        pairs = [p.split("=", 1) for p in self.models.split(",") if p]
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError(f"--models wants NAME=PATH[,NAME=PATH...], got {self.models!r}")
        return {name: Path(self.run) / path for name, path in pairs}


class SharedEncodings:
    """A `Segmenter` that remembers each image's encoding (keyed by its bytes), so every model
    evaluated on the same images shares one SAM encoder pass."""

    def __init__(self, segmenter: Any) -> None:
        self.inner = segmenter
        self.cache: dict[str, Any] = {}

    def encode(self, image: np.ndarray) -> Any:
        key = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.inner.encode(image)
        return self.cache[key]

    def decode(self, embedding: Any, box: Any, points: Any) -> Any:
        return self.inner.decode(embedding, box, points)


def export_all(cfg: EvalConfig) -> dict[str, Path]:
    from segzero_edge.export.engine import ExportConfig, export_engines

    dirs = {}
    for name, src in cfg.model_paths().items():
        out = Path(cfg.run) / "engines" / name
        if cfg.force_export or not (out / "manifest.json").is_file():
            with timed(f"export:{name}", Path(cfg.run) / "times.jsonl"):
                export_engines(ExportConfig(reasoner=str(src), segmenter=str(Path(cfg.run) / cfg.segmenter), out=out,
                                            reasoner_precision=cfg.reasoner_precision,
                                            segmenter_precision=cfg.segmenter_precision, force=True), progress=False)
        dirs[name] = out
    return dirs


def split_rows(path: Path, limit: int) -> dict[str, dict[str, Any]]:
    """sample id → the row's family, template and 840-space ground-truth box (ids as read_eval_set makes them)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["image_id", "ann_id", "family", "template", "gt_bbox"]).slice(0, limit)
    return {f"{r['image_id']}:{r['ann_id']}": r for r in table.to_pylist()}


#: sample id → (target index, every object's 840-space box, every object's "colour shape" name)
SceneTruth = dict[str, tuple[int, list[tuple[int, int, int, int]], list[str]]]


def scene_truth(split: str, limit: int) -> SceneTruth:
    """Each sample's scene truth, regenerated from the split's seeds."""
    from segzero_edge.synthetic import generate_split
    from segzero_edge.synthetic.language import box840

    return {f"{s.image_id}:{s.ann_id}": (s.query.target, [box840(o) for o in s.scene.objects],
                                         [o.name for o in s.scene.objects])
            for s in generate_split(split, limit, seed=0, size=512)}


def per_sample(records_path: Path, rows: dict[str, dict[str, Any]],
               truth: SceneTruth | None = None) -> list[dict[str, Any]]:
    """Evaluation records joined with the split's rows: IoU, parsed, box IoU (840 space), family, and
    (with `truth`) whether the answer's box lands on some object (IoU > 0.5 with any: `localised`)
    and on the target (`right_object`), which splits errors into perception and choice, and the
    grounded reasoning's stage checks (`grounded_text.grounded_diagnosis`)."""
    from segzero_edge.answer import AnswerError, parse_answer
    from segzero_edge.geometry import box_iou

    out = []
    for line in records_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "id" not in rec or rec["id"] not in rows:
            continue
        row = rows[rec["id"]]
        box = None
        try:
            box = parse_answer(rec.get("answer") or "").bbox
            biou, parsed = box_iou(box, tuple(row["gt_bbox"])), True
        except AnswerError:
            biou, parsed = 0.0, False
        union = rec["union"]
        entry = {"id": rec["id"], "iou": rec["intersection"] / union if union else 1.0,
                 "intersection": rec["intersection"], "union": union, "parsed": parsed, "box_iou": biou,
                 "family": row["family"], "template": row["template"], "tokens": rec["timings"].get("tokens")}
        if truth is not None and rec["id"] in truth:
            target, objs, names = truth[rec["id"]]
            overlaps = [box_iou(box, b) for b in objs] if box is not None else [0.0]
            best = int(np.argmax(overlaps))
            entry["localised"] = overlaps[best] > 0.5
            entry["right_object"] = entry["localised"] and best == target
            entry |= grounded_diagnosis(rec.get("think") or "", box, names, objs, target)
        out.append(entry)
    return out


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    inter = sum(s["intersection"] for s in samples)
    union = sum(s["union"] for s in samples)
    families: dict[str, list[float]] = {}
    for s in samples:
        families.setdefault(s["family"], []).append(s["iou"])
    extra = {k: round(float(np.mean([s[k] for s in samples])), 4) for k in DIAGNOSTICS if all(k in s for s in samples)}
    return {"giou": round(float(np.mean([s["iou"] for s in samples])), 4), "ciou": round(inter / union, 4), **extra,
            "parsed": round(float(np.mean([s["parsed"] for s in samples])), 4),
            "box_iou": round(float(np.mean([s["box_iou"] for s in samples])), 4), "n": len(samples),
            "family_giou": {f: {"giou": round(float(np.mean(v)), 4), "n": len(v)} for f, v in sorted(families.items())}}


def bootstrap_gain(base: list[dict[str, Any]], other: list[dict[str, Any]], resamples: int, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of the gIoU gain (other - base) over the same samples: mean and 95% interval."""
    a = {s["id"]: s["iou"] for s in base}
    diff = np.asarray([s["iou"] - a[s["id"]] for s in other if s["id"] in a])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"gain": round(float(diff.mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)], "n": len(diff)}


def segmenter_alone(pipe: Any, split: str, limit: int) -> dict[str, Any]:
    """Mean mask IoU of the segmenter engine prompted with the ground-truth box and reference points."""
    from segzero_edge.answer import Answer
    from segzero_edge.metrics import IoUMeter
    from segzero_edge.synthetic import generate_split

    meter = IoUMeter()
    for sample in generate_split(split, limit, seed=0, size=512):
        h, w = sample.mask.shape
        gt = Answer(bbox=sample.bbox, points=sample.points).rescale(w, h)
        masks, scores = pipe.segmenter.decode(pipe.segmenter.encode(sample.scene.image), gt.bbox, gt.points)
        meter.update(masks[int(np.argmax(scores))], sample.mask)
    return {"giou": round(meter.giou, 4), "ciou": round(meter.ciou, 4), "n": meter.count}


def evaluate_all(cfg: EvalConfig, dirs: dict[str, Path]) -> dict[str, Any]:
    from segzero_edge.evaldata import read_eval_set
    from segzero_edge.evaluate import evaluate
    from segzero_edge.runtime import ReasoningSegmenter

    names = list(dirs)
    pipes = {m: ReasoningSegmenter.from_dir(dirs[m], max_new_tokens=cfg.max_new_tokens) for m in names}
    result: dict[str, Any] = {"splits": {}, "segmenter_gt_prompts": {}}
    for split in [s for s in cfg.splits.split(",") if s]:
        path = Path(cfg.run) / "data" / f"{split}.parquet"
        rows = split_rows(path, cfg.limit)
        truth = scene_truth(split, cfg.limit)
        samples = list(read_eval_set(path, limit=cfg.limit))
        shared = SharedEncodings(pipes[names[0]].segmenter)  # one segmenter checkpoint for every model
        per_model: dict[str, list[dict[str, Any]]] = {}
        for m in names:
            pipes[m].segmenter = shared
            out = Path(cfg.run) / "eval" / f"{m}-{split}.jsonl"
            start = time.perf_counter()
            evaluate(pipes[m], samples, out, total=len(samples))
            per_model[m] = per_sample(out, rows, truth)
            entry = summarise(per_model[m]) | {"seconds": round(time.perf_counter() - start, 1)}
            for earlier in names[: names.index(m)]:  # every later model against every earlier one
                entry["gain_over_" + earlier] = bootstrap_gain(per_model[earlier], per_model[m], cfg.bootstrap)
            result["splits"].setdefault(split, {})[m] = entry
            print(f"{split:9s} {m:10s} {json.dumps({k: v for k, v in entry.items() if k != 'family_giou'})}", flush=True)
        if split in ("val", "test"):
            result["segmenter_gt_prompts"][split] = segmenter_alone(pipes[names[0]], split, cfg.limit)
            print(f"{split:9s} segmenter alone (GT prompts) {result['segmenter_gt_prompts'][split]}", flush=True)
    return result


def markdown(result: dict[str, Any], cfg: EvalConfig) -> str:
    names = list(cfg.model_paths())
    lines = [f"Engines: reasoner {cfg.reasoner_precision}, segmenter {cfg.segmenter_precision}; ONNX Runtime on the CPU, "
             f"greedy, max {cfg.max_new_tokens} new tokens; first {cfg.limit} rows per split.", "",
             "| split | model | gIoU | cIoU | parsed | box IoU | box on some object | box on the target |"
             + "".join(f" gIoU gain over {n} (95% CI) |" for n in names[:-1]),
             "|---|---|---:|---:|---:|---:|---:|---:|" + "---|" * (len(names) - 1)]

    def gain_cell(gain: dict[str, Any] | None) -> str:
        return f"{gain['gain']:+.4f} [{gain['ci95'][0]:+.4f}, {gain['ci95'][1]:+.4f}]" if gain else ""

    for split, models in result["splits"].items():
        for m, e in models.items():
            gains = "".join(f" {gain_cell(e.get('gain_over_' + n))} |" for n in names[:-1])  # one cell per earlier model
            lines.append(f"| {split} | {m} | {e['giou']:.4f} | {e['ciou']:.4f} | {e['parsed']:.3f} | {e['box_iou']:.4f} | "
                         f"{e.get('localised', float('nan')):.3f} | {e.get('right_object', float('nan')):.3f} |{gains}")
    if any("named_target" in e for models in result["splits"].values() for e in models.values()):
        lines += ["", "Grounded reasoning, stage by stage (`grounded_text.py`): listed entries named right (colour "
                  "and shape of the object their box is on) / final sentence names the target / answer box = a box "
                  "the listing gave that name:", "",
                  "| split | model | listing names right | names the target | answer copies the named box |",
                  "|---|---|---:|---:|---:|"]
        for split, models in result["splits"].items():
            for m, e in models.items():
                if "named_target" in e:
                    lines.append(f"| {split} | {m} | {e['listing_names_right']:.3f} | {e['named_target']:.3f} | "
                                 f"{e['answer_copies_named']:.3f} |")
    lines += ["", "gIoU per query family (n):", ""]
    families = sorted({f for models in result["splits"].values() for e in models.values() for f in e["family_giou"]})
    lines += ["| split | model | " + " | ".join(families) + " |", "|---|---|" + "---:|" * len(families)]
    for split, models in result["splits"].items():
        for m, e in models.items():
            cells = [f"{e['family_giou'][f]['giou']:.3f} ({e['family_giou'][f]['n']})" if f in e["family_giou"] else ""
                     for f in families]
            lines.append(f"| {split} | {m} | " + " | ".join(cells) + " |")
    lines += ["", "Segmenter alone, ground-truth box + two reference points: " + ", ".join(
        f"{s} mean IoU {v['giou']:.4f} (n={v['n']})" for s, v in result["segmenter_gt_prompts"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, EvalConfig)
    cfg = dataclass_from_args(EvalConfig, parser.parse_args(argv))
    dirs = export_all(cfg)
    with timed("eval_engines", Path(cfg.run) / "times.jsonl"):
        result = evaluate_all(cfg, dirs)
    result["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    result["engine_bytes"] = {m: sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for m, d in dirs.items()}
    write_json(Path(cfg.run) / "eval" / "summary.json", result)
    md = markdown(result, cfg)
    (Path(cfg.run) / "eval" / "summary.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
