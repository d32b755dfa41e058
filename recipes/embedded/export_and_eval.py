"""Export the SFT and SFT+GRPO reasoners (with the trained segmenter) to engine directories and
score both through the runtime on the val / test / zero-shot splits, as `segzero-edge eval` does.

    python recipes/embedded/export_and_eval.py --run runs/embedded [--limit 200]

Reads RUN/sft, RUN/grpo/merged, RUN/segmenter and RUN/data/{val,test,zeroshot}.parquet; writes
RUN/engines/{sft,grpo}/ (manifest.json last), RUN/eval/{model}-{split}.jsonl (per sample,
resumable) and recipes/embedded/results/reasoner_eval.{json,md}. Both engine dirs hold the
same segmenter files (checked by sha256), so each image is SAM-encoded once for both models.
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
from common import RESULTS, timed, write_json

MODELS = ("sft", "grpo")


@dataclass
class EvalConfig:
    run: Path = field(metadata={"help": "run dir with sft/, grpo/merged/, segmenter/ and data/"})
    reasoner_precision: str = field(default="int8", metadata={"help": "exported reasoner precision"})
    segmenter_precision: str = field(default="fp32", metadata={"help": "exported segmenter precision"})
    limit: int = field(default=200, metadata={"help": "samples per split (the first N rows)"})
    splits: list[str] = field(default_factory=lambda: ["val", "test", "zeroshot"], metadata={"help": "splits"})
    max_new_tokens: int = field(default=256, metadata={"help": "reasoner token budget (completions are < 200)"})
    force_export: bool = field(default=False, metadata={"help": "re-export even when the engine dir exists"})
    results: Path = field(default=RESULTS, metadata={"help": "where the summary json/md go"})


class SharedEncodings:
    """A `Segmenter` that remembers each image's encoding (keyed by its bytes), so a second
    model evaluated on the same images skips SAM's image encoder."""

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


def sources(run: Path) -> dict[str, Path]:
    return {"sft": run / "sft", "grpo": run / "grpo" / "merged", "segmenter": run / "segmenter"}


def export_all(cfg: EvalConfig) -> dict[str, Path]:
    from segzero_edge.export.engine import ExportConfig, export_engines

    src = sources(Path(cfg.run))
    dirs = {}
    for model in MODELS:
        out = Path(cfg.run) / "engines" / model
        if cfg.force_export or not (out / "manifest.json").is_file():
            with timed(f"export_{model}", Path(cfg.run) / "times.jsonl"):
                export_engines(ExportConfig(reasoner=str(src[model]), segmenter=str(src["segmenter"]), out=out,
                                            reasoner_precision=cfg.reasoner_precision,
                                            segmenter_precision=cfg.segmenter_precision, force=True), progress=False)
        dirs[model] = out
    return dirs


def same_segmenter(dirs: dict[str, Path]) -> bool:
    """True when both engine dirs hold byte-identical segmenter graphs (then encodings are shared)."""
    a, b = (json.loads((dirs[m] / "manifest.json").read_text()) for m in MODELS)
    return _seg_hashes(a) == _seg_hashes(b) and bool(_seg_hashes(a))


def _seg_hashes(manifest: dict) -> dict:
    return {k: v for k, v in manifest.get("files", {}).items() if str(k).startswith("segmenter")}


def bytes_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def evaluate_all(cfg: EvalConfig, dirs: dict[str, Path]) -> dict[str, Any]:
    from segzero_edge.runtime import ReasoningSegmenter

    from segzero_edge.evaldata import read_eval_set
    from segzero_edge.evaluate import evaluate

    pipes = {m: ReasoningSegmenter.from_dir(dirs[m], max_new_tokens=cfg.max_new_tokens) for m in MODELS}
    share = same_segmenter(dirs)
    print(f"segmenter graphs identical in both engine dirs: {share} (shared SAM encodings: {share})", flush=True)
    table: dict[str, Any] = {}
    for split in cfg.splits:
        samples = list(read_eval_set(Path(cfg.run) / "data" / f"{split}.parquet", limit=cfg.limit))
        shared = SharedEncodings(pipes["sft"].segmenter)
        for model in MODELS:
            if share:
                pipes[model].segmenter = shared
            start = time.perf_counter()
            out = Path(cfg.run) / "eval" / f"{model}-{split}.jsonl"
            summary = evaluate(pipes[model], samples, out, total=len(samples))
            table.setdefault(split, {})[model] = {"giou": round(summary.giou, 4), "ciou": round(summary.ciou, 4),
                                                  "n": summary.count, "failed": summary.failed,
                                                  "seconds": round(time.perf_counter() - start, 1)}
            print(f"{split:9s} {model:4s} {summary.line()} failed={summary.failed}", flush=True)
    return table


def markdown(table: dict[str, Any], cfg: EvalConfig) -> str:
    lines = [f"Reasoner precision {cfg.reasoner_precision}, segmenter {cfg.segmenter_precision}, runtime on CPU, "
             f"first {cfg.limit} rows per split, max_new_tokens {cfg.max_new_tokens}.", "",
             "| split | SFT gIoU | SFT cIoU | SFT+GRPO gIoU | SFT+GRPO cIoU | n |", "|---|---|---|---|---|---|"]
    for split, row in table.items():
        s, g = row["sft"], row["grpo"]
        lines.append(f"| {split} | {s['giou']:.4f} | {s['ciou']:.4f} | {g['giou']:.4f} | {g['ciou']:.4f} | {s['n']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.cli.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, EvalConfig)
    cfg = dataclass_from_args(EvalConfig, parser.parse_args(argv))
    dirs = export_all(cfg)
    with timed("eval_engines", Path(cfg.run) / "times.jsonl"):
        table = evaluate_all(cfg, dirs)
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "engine_bytes": {m: bytes_of(d) for m, d in dirs.items()}, "results": table}
    write_json(Path(cfg.results) / "reasoner_eval.json", result)
    (Path(cfg.results) / "reasoner_eval.md").write_text(markdown(table, cfg), encoding="utf-8")
    print(markdown(table, cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
