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
    segmenter: Path | None = field(default=None, metadata={"help": "segmenter checkpoint (default RUN/segmenter)"})
    reasoner_precision: str = field(default="int8", metadata={"help": "exported reasoner precision"})
    segmenter_precision: str = field(default="fp32", metadata={"help": "exported segmenter precision"})
    limit: int = field(default=200, metadata={"help": "samples per split (the first N rows)"})
    splits: list[str] = field(default_factory=lambda: ["val", "test", "zeroshot"], metadata={"help": "splits"})
    max_new_tokens: int = field(default=256, metadata={"help": "reasoner token budget (completions are < 200)"})
    reason_only: bool = field(default=False, metadata={"help": "only run (and memoise) the reasoner answers"})
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


class CachedReasoner:
    """A `Reasoner` that memoises greedy generations in a JSONL file keyed by (reasoner graphs'
    sha256, image bytes, query): the reasoner pass can run before the segmenter is final, and
    `evaluate` then scores exactly the same answers. Greedy decoding is deterministic."""

    def __init__(self, reasoner: Any, path: Path, graphs_key: str) -> None:
        from segzero_edge.pipeline import Generation

        self.inner, self.path, self.graphs_key, self._gen = reasoner, Path(path), graphs_key, Generation
        self.memo: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last line
                self.memo[rec["key"]] = rec
        self.hits = 0

    def encode_image(self, image: np.ndarray) -> Any:
        return {"image": image, "key": hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), "enc": None}

    def generate(self, encoded: dict, query: str) -> Any:
        key = hashlib.sha1(f"{self.graphs_key}|{encoded['key']}|{query}".encode()).hexdigest()
        if key in self.memo:
            self.hits += 1
            rec = self.memo[key]
            return self._gen(rec["text"], rec["prefill_ms"], rec["decode_ms"], rec["tokens"])
        if encoded["enc"] is None:
            encoded["enc"] = self.inner.encode_image(encoded["image"])
        g = self.inner.generate(encoded["enc"], query)
        rec = {"key": key, "text": g.text, "prefill_ms": g.prefill_ms, "decode_ms": g.decode_ms, "tokens": g.tokens}
        self.memo[key] = rec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        return g


def graphs_key(engine_dir: Path) -> str:
    files = json.loads((Path(engine_dir) / "manifest.json").read_text())["files"]
    return hashlib.sha1(json.dumps({k: v["sha256"] for k, v in sorted(files.items()) if k.startswith("reasoner")},
                                   sort_keys=True).encode()).hexdigest()


def sources(run: Path) -> dict[str, Path]:
    return {"sft": run / "sft", "grpo": run / "grpo" / "merged", "segmenter": run / "segmenter"}


def export_all(cfg: EvalConfig) -> dict[str, Path]:
    from segzero_edge.export.engine import ExportConfig, export_engines

    src = sources(Path(cfg.run))
    if cfg.segmenter is not None:
        src["segmenter"] = Path(cfg.segmenter)
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
    """True when both engine dirs were exported from the same segmenter checkpoint at the same
    precision (then one set of SAM encodings serves both models: the same segmenter for both).
    The torch.onnx export of the encoder is not byte-deterministic, so hashes may differ."""
    a, b = (json.loads((dirs[m] / "manifest.json").read_text()) for m in MODELS)
    same = (a["sources"]["segmenter"] == b["sources"]["segmenter"]
            and a["components"]["segmenter"].get("precision") == b["components"]["segmenter"].get("precision"))
    print(f"segmenter graphs byte-identical: {_seg_hashes(a) == _seg_hashes(b)}", flush=True)
    return same


def _seg_hashes(manifest: dict) -> dict:
    return {k: v for k, v in manifest.get("files", {}).items() if str(k).startswith("segmenter")}


def bytes_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def evaluate_all(cfg: EvalConfig, dirs: dict[str, Path]) -> dict[str, Any]:
    from segzero_edge.evaldata import read_eval_set
    from segzero_edge.evaluate import evaluate
    from segzero_edge.runtime import ReasoningSegmenter

    pipes = {m: ReasoningSegmenter.from_dir(dirs[m], max_new_tokens=cfg.max_new_tokens) for m in MODELS}
    for m in MODELS:  # answers memoised per model (see CachedReasoner)
        pipes[m].reasoner = CachedReasoner(pipes[m].reasoner, Path(cfg.run) / "eval" / f"{m}-generations.jsonl",
                                           graphs_key(dirs[m]))
    share = same_segmenter(dirs)
    print(f"same segmenter checkpoint and precision in both engine dirs: {share} (shared SAM encodings)", flush=True)
    table: dict[str, Any] = {}
    for split in cfg.splits:
        samples = list(read_eval_set(Path(cfg.run) / "data" / f"{split}.parquet", limit=cfg.limit))
        if cfg.reason_only:  # fill the generation memo; no segmenter, no scores
            from tqdm.auto import tqdm

            for model in MODELS:
                r = pipes[model].reasoner
                for sample in tqdm(samples, desc=f"{model} {split} answers", mininterval=10):
                    r.generate(r.encode_image(np.asarray(sample.image)), sample.query)
            continue
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
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, EvalConfig)
    cfg = dataclass_from_args(EvalConfig, parser.parse_args(argv))
    dirs = export_all(cfg)
    with timed("eval_engines" + ("_reasoner_pass" if cfg.reason_only else ""), Path(cfg.run) / "times.jsonl"):
        table = evaluate_all(cfg, dirs)
    if cfg.reason_only:
        return 0
    result = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "engine_bytes": {m: bytes_of(d) for m, d in dirs.items()}, "results": table}
    write_json(Path(cfg.results) / "reasoner_eval.json", result)
    (Path(cfg.results) / "reasoner_eval.md").write_text(markdown(table, cfg), encoding="utf-8")
    print(markdown(table, cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
