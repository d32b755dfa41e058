"""Write the embedded recipe's synthetic dataset (ReasonSeg layout) in parallel, deterministically.

    python recipes/embedded/make_data.py --out runs/embedded/data [--train 6000 --val 300 ...]

val / test / zeroshot are exactly `segzero-edge synth --seed 0` (or
`segzero_edge.synthetic.write_dataset(..., seed=0)`) with the same row counts: row i is the
same whatever the count. train is built from `train_shards` shards, shard k being the train
split of base seed `train_seed + k` (disjoint scene ranges), concatenated in shard order; the
result does not depend on the number of worker processes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed


@dataclass
class DataConfig:
    out: Path = field(metadata={"help": "output directory (train/val/test/zeroshot .parquet + info.json)"})
    train: int = field(default=6000, metadata={"help": "train rows"})
    val: int = field(default=300, metadata={"help": "val rows (base seed 0)"})
    test: int = field(default=300, metadata={"help": "test rows (base seed 0)"})
    zeroshot: int = field(default=300, metadata={"help": "zero-shot rows (base seed 0, held-out templates)"})
    train_shards: int = field(default=16, metadata={"help": "train shards; shard k uses base seed train_seed + k"})
    train_seed: int = field(default=1, metadata={"help": "base seed of train shard 0"})
    queries_per_image: int = field(default=2, metadata={"help": "train rows per scene (distinct templates)"})
    size: int = field(default=512, metadata={"help": "image size in pixels"})
    workers: int = field(default=0, metadata={"help": "processes; 0 = all CPU cores"})

    def __post_init__(self) -> None:
        if self.train_shards < 1 or self.train < self.train_shards:
            raise ValueError(f"need 1 <= train_shards <= train, got {self.train_shards} shards for {self.train} rows")


def _job(args: tuple[str, dict[str, int], int, int, int, str]) -> str:
    from segzero_edge.synthetic import write_dataset

    name, sizes, seed, qpi, size, tmp = args
    write_dataset(Path(tmp) / name, sizes, size=size, seed=seed, progress=False, queries_per_image=qpi)
    return name


def make_data(cfg: DataConfig) -> dict:
    import os

    import pyarrow.parquet as pq

    out = Path(cfg.out)
    if out.exists():
        raise FileExistsError(f"{out} exists; delete it first")
    per = [cfg.train // cfg.train_shards + (k < cfg.train % cfg.train_shards) for k in range(cfg.train_shards)]
    jobs = [(f"train{k:03d}", {"train": n}, cfg.train_seed + k, cfg.queries_per_image, cfg.size) for k, n in enumerate(per)]
    jobs += [(split, {split: n}, 0, 1, cfg.size) for split, n in
             (("val", cfg.val), ("test", cfg.test), ("zeroshot", cfg.zeroshot))]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with ProcessPoolExecutor(cfg.workers or os.cpu_count()) as pool:
            done = list(pool.map(_job, [(*j, str(tmp)) for j in jobs]))
        staging = tmp / "final"
        staging.mkdir()
        tables = [pq.read_table(tmp / f"train{k:03d}" / "train.parquet") for k in range(cfg.train_shards)]
        with pq.ParquetWriter(staging / "train.parquet", tables[0].schema) as w:
            for t in tables:
                w.write_table(t)
        info = {"recipe": "recipes/embedded/make_data.py", "config": {k: str(v) for k, v in vars(cfg).items()},
                "train_shard_seeds": [cfg.train_seed + k for k in range(cfg.train_shards)], "splits": {}}
        info["splits"]["train"] = {"rows": sum(t.num_rows for t in tables)}
        for split in ("val", "test", "zeroshot"):
            shutil.copy(tmp / split / f"{split}.parquet", staging / f"{split}.parquet")
            sub = json.loads((tmp / split / "info.json").read_text())
            info["splits"][split] = sub["splits"][split]
            info.setdefault("generator_version", sub["generator_version"])
            info.setdefault("zeroshot_templates", sub["zeroshot_templates"])
        (staging / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        staging.rename(out)
        assert len(done) == len(jobs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, DataConfig)
    cfg = dataclass_from_args(DataConfig, parser.parse_args(argv))
    with timed("make_data", Path(cfg.out).parent / "times.jsonl") as rec:
        info = make_data(cfg)
        rec.update(rows={k: v["rows"] for k, v in info["splits"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
