"""Splits of the synthetic domain, and writing them in ReasonSeg's Hugging Face layout.

Each split draws scenes from its own seed range (`split_seed`): train, val and test
never share a scene, and the zero-shot split uses only `ZEROSHOT_TEMPLATES`, which
train/val/test never use. A split is a pure function of (split, seed, config): sample
i is the same whatever n is asked for.

On disk (`write_dataset`): `OUT/{split}.parquet`, `OUT/info.json`, and `OUT/README.md`
(a dataset card whose YAML declares the four splits for `datasets.load_dataset(OUT)`). Columns:
`image` and `mask` are Hugging Face Image structs `{bytes: PNG, path: null}` (declared in
the parquet's `huggingface` metadata, so `datasets` decodes them to PIL; the mask is a
1-bit PNG, so `np.array(row["mask"])` is an HxW bool array as Seg-Zero's evaluation
expects), `text`/`problem` (the query), `image_id`, `ann_id`, `img_height`, `img_width`,
and for training `solution` (Seg-Zero's `<box>…</box><points>…</points>` in 840 space),
`gt_bbox` [4], `gt_points` [2][2] (840 space), `reasoning`, `completion` (the full
templated Seg-Zero completion, for SFT), `template`, `family`, `split`, `scene_seed`,
`num_objects`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .language import Query
from .parquet_rows import hf_schema, image_type, write_rows
from .queries import (
    SEEN_TEMPLATES,
    TEMPLATES,
    ZEROSHOT_TEMPLATES,
    answer_for,
    format_completion,
    make_queries,
    solution_string,
)
from .scene import Scene, SceneConfig, render_scene

#: Bumped whenever the same seed would give different bytes.
GENERATOR_VERSION = "1"

SPLITS = ("train", "val", "test", "zeroshot")
SPLIT_STRIDE = 10**12  # seed-range width per split
SEED_STRIDE = 10**8  # scenes per (split, base seed)
_MAX_BASE_SEED = SPLIT_STRIDE // SEED_STRIDE

DEFAULT_SIZES: Mapping[str, int] = {"train": 2000, "val": 200, "test": 200, "zeroshot": 200}


@dataclass(frozen=True)
class SynthConfig:
    """What `segzero-edge synth` writes (the CLI options are generated from these fields)."""

    train: int = field(default=DEFAULT_SIZES["train"], metadata={"help": "train rows"})
    val: int = field(default=DEFAULT_SIZES["val"], metadata={"help": "val rows"})
    test: int = field(default=DEFAULT_SIZES["test"], metadata={"help": "test rows"})
    zeroshot: int = field(
        default=DEFAULT_SIZES["zeroshot"], metadata={"help": "zero-shot rows (held-out templates)"}
    )
    size: int = field(default=512, metadata={"help": "image width in pixels (and height unless --height)"})
    height: int | None = field(default=None, metadata={"help": "image height; default: square"})
    seed: int = field(default=0, metadata={"help": "base seed; every split has its own seed range under it"})
    difficulty: float = field(default=0.5, metadata={"help": "0 (sparse, clean) .. 1 (overlapping, noisy)"})
    queries_per_image: int = field(default=1, metadata={"help": "rows per scene, from distinct templates"})

    def __post_init__(self) -> None:
        for split in SPLITS:
            if getattr(self, split) < 0:
                raise ValueError(f"{split} must be >= 0 rows, got {getattr(self, split)}")
        if not 0 <= self.seed < _MAX_BASE_SEED:
            raise ValueError(f"seed must be in [0, {_MAX_BASE_SEED}), got {self.seed}")
        if self.queries_per_image < 1:
            raise ValueError(f"queries_per_image must be >= 1, got {self.queries_per_image}")
        SceneConfig(width=self.size, height=self.height, difficulty=self.difficulty)  # validates both

    @property
    def sizes(self) -> dict[str, int]:
        return {split: getattr(self, split) for split in SPLITS}

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size, self.height if self.height is not None else self.size


def split_seed(split: str, index: int, seed: int = 0) -> int:
    """The scene seed of scene `index` of `split` for base `seed`; ranges never overlap."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    if not 0 <= seed < _MAX_BASE_SEED:
        raise ValueError(f"base seed must be in [0, {_MAX_BASE_SEED}), got {seed}")
    if not 0 <= index < SEED_STRIDE:
        raise ValueError(f"scene index must be in [0, {SEED_STRIDE}), got {index}")
    return SPLITS.index(split) * SPLIT_STRIDE + seed * SEED_STRIDE + index


def split_templates(split: str) -> tuple[str, ...]:
    """Template ids a split draws from: the held-out ones for `zeroshot`, the rest otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return ZEROSHOT_TEMPLATES if split == "zeroshot" else SEEN_TEMPLATES


@dataclass(frozen=True, eq=False)
class Sample:
    """One (image, query, target) row. `bbox`/`points` are Seg-Zero's ground truth in 840 space."""

    split: str
    scene: Scene = field(repr=False)
    query: Query
    ann: int  # the query's number within its scene
    bbox: tuple[int, int, int, int]
    points: tuple[tuple[int, int], tuple[int, int]]

    @property
    def image_id(self) -> str:
        return f"synth-{self.scene.seed}"

    @property
    def ann_id(self) -> str:
        return f"synth-{self.scene.seed}-{self.ann}"

    @property
    def mask(self) -> np.ndarray:
        """HxW bool: the target's visible pixels."""
        return self.scene.objects[self.query.target].mask

    @property
    def completion(self) -> str:
        return format_completion(self.query.reasoning, self.bbox, self.points)

    @property
    def solution(self) -> str:
        return solution_string(self.bbox, self.points)

    def row(self) -> dict[str, Any]:
        """The parquet row (images encoded as PNG in HF Image structs)."""
        return {
            "image": {"bytes": encode_png(self.scene.image), "path": None},
            "text": self.query.text,
            "mask": {"bytes": encode_png(self.mask), "path": None},
            "image_id": self.image_id,
            "ann_id": self.ann_id,
            "img_height": self.scene.height,
            "img_width": self.scene.width,
            "problem": self.query.text,
            "solution": self.solution,
            "gt_bbox": list(self.bbox),
            "gt_points": [list(p) for p in self.points],
            "reasoning": self.query.reasoning,
            "completion": self.completion,
            "template": self.query.template,
            "family": self.query.family,
            "split": self.split,
            "scene_seed": self.scene.seed,
            "num_objects": len(self.scene.objects),
        }


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an HxWx3 uint8 image, or a 1-bit PNG of an HxW bool mask."""
    img = Image.fromarray(array) if array.dtype != bool else Image.fromarray(array).convert("1")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def generate_split(
    split: str,
    n: int,
    seed: int = 0,
    size: int | tuple[int, int] = 512,
    *,
    difficulty: float = 0.5,
    queries_per_image: int = 1,
    config: SceneConfig | None = None,
) -> Iterator[Sample]:
    """Yield `n` samples of `split`: scenes from the split's seed range, each with up to
    `queries_per_image` queries from distinct templates allowed in the split.

    A scene with no possible query for the split is skipped (its seed is not reused).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if queries_per_image < 1:
        raise ValueError(f"queries_per_image must be >= 1, got {queries_per_image}")
    cfg = config or SceneConfig(difficulty=difficulty)
    templates = split_templates(split)
    made, index = 0, 0
    while made < n:
        if index > 50 * n + 100:  # every template set finds queries in most scenes
            raise RuntimeError(
                f"only {made} of {n} {split} samples after {index} scenes; scenes are too sparse"
            )
        scene = render_scene(split_seed(split, index, seed), size, config=cfg)
        index += 1
        rng = np.random.default_rng([scene.seed, 1])
        queries = make_queries(scene, rng, templates)
        if not queries:
            continue
        chosen = rng.choice(len(queries), size=min(queries_per_image, len(queries)), replace=False)
        for ann, q in enumerate(queries[int(i)] for i in chosen):
            answer = answer_for(scene.objects[q.target].mask)
            yield Sample(split, scene, q, ann, answer.bbox, answer.points)
            made += 1
            if made == n:
                return


#: What each parquet column holds (also written to info.json).
COLUMNS: Mapping[str, str] = {
    "image": "HF Image struct {bytes: PNG RGB, path: null}",
    "text": "the query (Seg-Zero evaluation reads this)",
    "mask": "HF Image struct {bytes: 1-bit PNG, path: null}; np.array(decoded) is HxW bool",
    "image_id": "synth-{scene_seed}",
    "ann_id": "synth-{scene_seed}-{query number in the scene}",
    "img_height": "int", "img_width": "int",
    "problem": "the query (Seg-Zero training reads this)",
    "solution": "<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>, 840 space",
    "gt_bbox": "[x1, y1, x2, y2] ints, inclusive mask box in 840 space",
    "gt_points": "[[x, y], [x, y]] ints, Seg-Zero reference points in 840 space",
    "reasoning": "templated reasoning (no '<', '{', '}')",
    "completion": "<think>{reasoning}</think><answer>{json}</answer>, scores 5.0 under seg_zero",
    "template": "query template id", "family": "template family", "split": "split name",
    "scene_seed": "int, the render_scene seed", "num_objects": "int",
}  # fmt: skip


def _schema() -> Any:
    import pyarrow as pa

    image, ints = image_type(), pa.list_(pa.int64())
    return hf_schema([
        ("image", image), ("text", pa.string()), ("mask", image), ("image_id", pa.string()),
        ("ann_id", pa.string()), ("img_height", pa.int64()), ("img_width", pa.int64()),
        ("problem", pa.string()), ("solution", pa.string()), ("gt_bbox", ints), ("gt_points", pa.list_(ints)),
        ("reasoning", pa.string()), ("completion", pa.string()), ("template", pa.string()),
        ("family", pa.string()), ("split", pa.string()), ("scene_seed", pa.int64()), ("num_objects", pa.int64()),
    ])  # fmt: skip


def _write_split(path: Path, samples: Iterator[Sample], n: int, progress: bool, desc: str) -> dict[str, Any]:
    templates: Counter[str] = Counter()
    scenes: set[int] = set()

    def rows() -> Iterator[dict[str, Any]]:
        for sample in samples:
            templates[sample.query.template] += 1
            scenes.add(sample.scene.seed)
            yield sample.row()

    write_rows(path, _schema(), rows(), n, progress, desc)
    return {
        "rows": sum(templates.values()),
        "scenes": len(scenes),
        "scene_seeds": [min(scenes), max(scenes)] if scenes else None,
        "templates": dict(sorted(templates.items())),
    }


def _readme(info: Mapping[str, Any]) -> str:
    """A dataset card whose YAML header declares the splits, so that
    `datasets.load_dataset(OUT)` finds all of them (it would drop `zeroshot` otherwise)."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in info["splits"]:
        lines += [f"  - split: {split}", f"    path: {split}.parquet"]
    lines += ["---", "", "# Synthetic shapes: reasoning segmentation", ""]
    lines.append(
        f"Generated by `segzero_edge.synthetic` (generator version {info['generator_version']}, seed {info['seed']}, "
        f"images {info['image_size'][0]}x{info['image_size'][1]}). One row per query; each query has exactly one "
        "target object. Zero-shot templates (only in `zeroshot`): "
        + ", ".join(info["zeroshot_templates"])
        + "."
    )
    lines += ["", "| split | rows | scenes |", "|---|---|---|"]
    lines += [f"| {k} | {v['rows']} | {v['scenes']} |" for k, v in info["splits"].items()]
    lines += ["", "| column | holds |", "|---|---|"]
    lines += [f"| `{k}` | {f'`{v}`' if '<' in v else v} |" for k, v in info["columns"].items()]
    return "\n".join(lines) + "\n\nCounts per template, seeds and the scene config: `info.json`.\n"


def write_dataset(
    out_dir: str | os.PathLike[str],
    sizes: Mapping[str, int] | None = None,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    progress: bool = True,
    *,
    difficulty: float = 0.5,
    queries_per_image: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `OUT/{split}.parquet` for each split in `sizes` (default `DEFAULT_SIZES`) and
    `OUT/info.json`; return the info dict. Atomic: built in a sibling temp folder, then
    renamed into place. An existing `out_dir` is an error unless `overwrite`."""
    out = Path(out_dir)
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; known: {', '.join(SPLITS)}")
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"split sizes must be >= 0, got {sizes}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    config = SceneConfig(difficulty=difficulty)
    w, h = (size, size) if isinstance(size, int) else size
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    start = time.perf_counter()
    try:
        splits = {}
        for split, n in sizes.items():
            samples = generate_split(
                split, n, seed, (w, h), queries_per_image=queries_per_image, config=config
            )
            splits[split] = _write_split(tmp / f"{split}.parquet", samples, n, progress, split)
        info = {
            "generator": "segzero_edge.synthetic",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "image_size": [w, h],
            "scene_config": {**dataclasses.asdict(config), "width": w, "height": h},
            "queries_per_image": queries_per_image,
            "split_seed": f"split_index * {SPLIT_STRIDE} + seed * {SEED_STRIDE} + scene_index, split_index in {list(SPLITS)}",
            "zeroshot_templates": list(ZEROSHOT_TEMPLATES),
            "templates": {t.id: {"family": t.family, "zeroshot": t.zeroshot} for t in TEMPLATES.values()},
            "columns": COLUMNS,
            "splits": splits,
            "seconds": round(time.perf_counter() - start, 1),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(info))
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
