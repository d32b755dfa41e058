"""Multi-object splits of the synthetic domain (VisionReasoner format), ReasonSeg-style on disk.

Scenes come from the same seed ranges as the single-object splits (`split_seed`), so train,
val and test never share a scene; each scene gives one multi-target or no-target query
(`multi_queries.py`), drawn from its own random stream. There is no zero-shot split.

On disk (`write_multi_dataset`): `OUT/{split}.parquet`, `OUT/info.json`, `OUT/README.md`.
Columns as the single-object splits where they apply (`image`, `text`, `mask`, `image_id`,
`ann_id`, `img_height`, `img_width`, `problem`, `reasoning`, `completion`, `template`,
`family`, `split`, `scene_seed`, `num_objects`), with `mask` the union of the targets (empty
for a no-target query) and `solution` Seg-Zero's multi-object JSON in 840 space; plus `bbox`
(the box around all targets in image pixels, null when there is none: Seg-Zero's evaluation
reads it for its box metric), `targets` (object indices) and `num_targets`.
"""

from __future__ import annotations

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

from ..geometry import mask_bbox
from ..multi_truth import ObjectTruth, instance_truth, solution_json
from .dataset import GENERATOR_VERSION, encode_png, split_seed
from .multi_queries import MULTI_TEMPLATES, MultiQuery, make_multi_queries
from .parquet_rows import hf_schema, image_type, write_rows
from .scene import Scene, SceneConfig, render_scene

MULTI_SPLITS = ("train", "val", "test")
DEFAULT_MULTI_SIZES: Mapping[str, int] = {"train": 2000, "val": 200, "test": 200}
#: Share of no-target queries in a split, and of multi-target picks with two or more targets.
NO_TARGET_RATE = 0.15
SEVERAL_TARGETS_RATE = 0.75


def format_multi_completion(reasoning: str, objects: list[ObjectTruth]) -> str:
    """`<think>…</think><answer>[{"bbox_2d": [...], "point_2d": [...]}, ...]</answer>`, lists
    written as in Seg-Zero's prompt example (no spaces inside, ", " between objects)."""
    bad = sorted({ch for ch in reasoning if ch in "<>"})
    if bad or not reasoning.strip():
        raise ValueError(f"reasoning must be non-empty and free of {bad or '<>'}: {reasoning[:80]!r}")
    items = ", ".join(
        f'{{"bbox_2d": [{",".join(map(str, o.bbox))}], "point_2d": [{",".join(map(str, o.point))}]}}'
        for o in objects
    )
    return f"<think>{reasoning}</think><answer>[{items}]</answer>"


@dataclass(frozen=True, eq=False)
class MultiSample:
    """One (image, query, targets) row; `objects` is Seg-Zero's ground truth in 840 space."""

    split: str
    scene: Scene = field(repr=False)
    query: MultiQuery
    objects: tuple[ObjectTruth, ...]

    @property
    def image_id(self) -> str:
        return f"synth-{self.scene.seed}"

    @property
    def ann_id(self) -> str:
        return f"synth-{self.scene.seed}-multi"

    @property
    def masks(self) -> list[np.ndarray]:
        """One HxW bool mask per target, left to right."""
        return [self.scene.objects[i].mask for i in self.query.targets]

    @property
    def mask(self) -> np.ndarray:
        """HxW bool: the union of the targets' visible pixels (empty for a no-target query)."""
        union = np.zeros((self.scene.height, self.scene.width), dtype=bool)
        for m in self.masks:
            union |= m
        return union

    @property
    def completion(self) -> str:
        return format_multi_completion(self.query.reasoning, list(self.objects))

    def row(self) -> dict[str, Any]:
        """The parquet row (images encoded as PNG in HF Image structs)."""
        mask = self.mask
        box = mask_bbox(mask)
        return {
            "image": {"bytes": encode_png(self.scene.image), "path": None},
            "text": self.query.text,
            "mask": {"bytes": encode_png(mask), "path": None},
            "bbox": list(box) if box is not None else None,
            "image_id": self.image_id,
            "ann_id": self.ann_id,
            "img_height": self.scene.height,
            "img_width": self.scene.width,
            "problem": self.query.text,
            "solution": solution_json(self.objects),
            "reasoning": self.query.reasoning,
            "completion": self.completion,
            "template": self.query.template,
            "family": self.query.family,
            "targets": list(self.query.targets),
            "num_targets": len(self.query.targets),
            "split": self.split,
            "scene_seed": self.scene.seed,
            "num_objects": len(self.scene.objects),
        }

    def instance_row(self) -> dict[str, Any]:
        """image / text / one PNG mask per target: the training adapters' instance layout."""
        return {
            "image": {"bytes": encode_png(self.scene.image), "path": None},
            "text": self.query.text,
            "masks": [{"bytes": encode_png(m), "path": None} for m in self.masks],
        }


def _pick(rng: np.random.Generator, queries: list[MultiQuery]) -> MultiQuery:
    """A template uniformly among those with candidates, then (mostly) a candidate with
    several targets: one-target answers are the single-object task again."""
    templates = sorted({q.template for q in queries})
    chosen = templates[int(rng.integers(len(templates)))]
    queries = [q for q in queries if q.template == chosen]
    several = [q for q in queries if len(q.targets) > 1]
    if several and rng.random() < SEVERAL_TARGETS_RATE:
        queries = several
    return queries[int(rng.integers(len(queries)))]


def generate_multi_split(
    split: str,
    n: int,
    seed: int = 0,
    size: int | tuple[int, int] = 512,
    *,
    difficulty: float = 0.5,
    no_target_rate: float = NO_TARGET_RATE,
    config: SceneConfig | None = None,
) -> Iterator[MultiSample]:
    """Yield `n` multi-object samples of `split`, one per scene; a pure function of its arguments."""
    if split not in MULTI_SPLITS:
        raise ValueError(f"multi-object splits are {', '.join(MULTI_SPLITS)}; got {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= no_target_rate <= 1.0:
        raise ValueError(f"no_target_rate must lie in [0, 1], got {no_target_rate}")
    cfg = config or SceneConfig(difficulty=difficulty)
    made, index = 0, 0
    while made < n:
        if index > 50 * n + 100:
            raise RuntimeError(f"only {made} of {n} {split} samples after {index} scenes")
        scene = render_scene(split_seed(split, index, seed), size, config=cfg)
        index += 1
        rng = np.random.default_rng([scene.seed, 2])  # not the single-object stream ([seed, 1])
        family = "none" if rng.random() < no_target_rate else "multi"
        queries = make_multi_queries(scene, rng, family)
        if not queries:
            continue
        query = _pick(rng, queries)
        objects = tuple(instance_truth(scene.objects[i].mask) for i in query.targets)
        if any(o is None for o in objects):  # a target too small to survive: not a fair query
            continue
        yield MultiSample(split, scene, query, objects)  # type: ignore[arg-type]
        made += 1


def _schema() -> Any:
    import pyarrow as pa

    image, ints = image_type(), pa.list_(pa.int64())
    return hf_schema([
        ("image", image), ("text", pa.string()), ("mask", image), ("bbox", ints), ("image_id", pa.string()),
        ("ann_id", pa.string()), ("img_height", pa.int64()), ("img_width", pa.int64()), ("problem", pa.string()),
        ("solution", pa.string()), ("reasoning", pa.string()), ("completion", pa.string()),
        ("template", pa.string()), ("family", pa.string()), ("targets", ints), ("num_targets", pa.int64()),
        ("split", pa.string()), ("scene_seed", pa.int64()), ("num_objects", pa.int64()),
    ])  # fmt: skip


def _write_split(path: Path, samples: Iterator[MultiSample], n: int, progress: bool, desc: str) -> dict[str, Any]:
    templates: Counter[str] = Counter()
    targets: Counter[int] = Counter()

    def rows() -> Iterator[dict[str, Any]]:
        for sample in samples:
            templates[sample.query.template] += 1
            targets[len(sample.query.targets)] += 1
            yield sample.row()

    write_rows(path, _schema(), rows(), n, progress, desc)
    return {
        "rows": sum(templates.values()),
        "templates": dict(sorted(templates.items())),
        "targets_per_row": {str(k): v for k, v in sorted(targets.items())},
    }


def write_multi_dataset(
    out_dir: str | os.PathLike[str],
    sizes: Mapping[str, int] | None = None,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    progress: bool = True,
    *,
    difficulty: float = 0.5,
    no_target_rate: float = NO_TARGET_RATE,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `OUT/{split}.parquet` (+ info.json, README.md) atomically; return the info dict."""
    out = Path(out_dir)
    sizes = dict(DEFAULT_MULTI_SIZES if sizes is None else sizes)
    unknown = set(sizes) - set(MULTI_SPLITS)
    if unknown:
        raise ValueError(f"unknown multi-object splits {sorted(unknown)}; known: {', '.join(MULTI_SPLITS)}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    config = SceneConfig(difficulty=difficulty)
    w, h = (size, size) if isinstance(size, int) else size
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    start = time.perf_counter()
    try:
        splits = {}
        for split, n in sizes.items():
            samples = generate_multi_split(split, n, seed, (w, h), no_target_rate=no_target_rate, config=config)
            splits[split] = _write_split(tmp / f"{split}.parquet", samples, n, progress, split)
        info = {
            "generator": "segzero_edge.synthetic (multi-object)",
            "generator_version": GENERATOR_VERSION,
            "answer_format": "multi",
            "seed": seed,
            "image_size": [w, h],
            "no_target_rate": no_target_rate,
            "templates": {tid: family for tid, (family, _) in MULTI_TEMPLATES.items()},
            "splits": splits,
            "seconds": round(time.perf_counter() - start, 1),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        card = ["---", "configs:", "- config_name: default", "  data_files:"]
        card += [line for s in splits for line in (f"  - split: {s}", f"    path: {s}.parquet")]
        card += ["---", "", "# Synthetic shapes: multi-object reasoning segmentation", "", __doc__ or ""]
        (tmp / "README.md").write_text("\n".join(card))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
