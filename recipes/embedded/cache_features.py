"""SFT data for the embedded reasoner: synthetic train scenes, their grounded completions, and the
frozen (pre-trained) vision tower's features of each scene, computed once.

    python recipes/embedded/cache_features.py --vision runs/embedded/vision/model --out runs/embedded/features

Why cache: SFT keeps the pre-trained vision tower fixed, so its output for a scene never changes.
Computing it once turns every SFT step into a language-model-only step (on this 2-core CPU the
tower's forward + backward at 336² costs more than the language model's).

Writes `features.f16` (np.memmap [scenes, tokens, dim] float16), `rows.jsonl` (one line per
query: scene number, query, grounded completion, ground truth, template, family) and
`progress.json`; a killed run continues from the last finished chunk. Done when `report.json`
exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hardware, pick_device, timed, write_json


@dataclass
class FeatureConfig:
    vision: Path = field(metadata={"help": "reasoner checkpoint with the pre-trained tower (pretrain_vision's model/)"})
    out: Path = field(metadata={"help": "stage dir"})
    scenes: int = field(default=10000, metadata={"help": "train-split scenes"})
    queries_per_image: int = field(default=4, metadata={"help": "rows per scene, from distinct templates"})
    scene_seed: int = field(default=23, metadata={"help": "synthetic base seed (train split; not the vision stage's)"})
    chunk: int = field(default=256, metadata={"help": "scenes per resumable chunk"})
    batch: int = field(default=32, metadata={"help": "images per vision forward"})
    workers: int = field(default=2, metadata={"help": "scene rendering processes"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast for the forward (off: the cached features are what the fp32 graph computes)"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})


def scene_rows(args: tuple[int, int, int, int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Scene `index` → (reasoner image side² uint8, its query rows with grounded completions).

    Queries come from the seen templates (as the train split's), up to `queries_per_image` from
    distinct templates; a scene without any keeps its image and no rows."""
    from reasoner_data import ImageSpec, reasoner_image

    from segzero_edge.synthetic import answer_for, make_queries, render_scene, split_seed
    from segzero_edge.synthetic.language import grounded
    from segzero_edge.synthetic.queries import format_completion

    index, base, side, per_image = args
    scene = render_scene(split_seed("train", index, base), 512)
    rng = np.random.default_rng([scene.seed, 1])
    rows = []
    with grounded():
        queries = make_queries(scene, rng)
        if queries:
            chosen = rng.choice(len(queries), size=min(per_image, len(queries)), replace=False)
            for i in chosen:
                q = queries[int(i)]
                ans = answer_for(scene.objects[q.target].mask)
                rows.append({"text": q.text, "completion": format_completion(q.reasoning, ans.bbox, ans.points),
                             "gt_bbox": list(ans.bbox), "gt_points": [list(p) for p in ans.points],
                             "template": q.template, "family": q.family})
    return reasoner_image(scene.image, ImageSpec(side)), rows


def run(cfg: FeatureConfig) -> dict[str, Any]:
    from concurrent.futures import ProcessPoolExecutor

    import torch
    from common import cpu_bf16
    from reasoner_data import ImageSpec, pixel_batch
    from tqdm.auto import tqdm
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    device = pick_device(cfg.device)
    bf16 = cpu_bf16(device, cfg.bf16)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pre = json.loads((Path(cfg.vision) / "preprocessor_config.json").read_text())
    side = round(pre["max_pixels"] ** 0.5)
    spec = ImageSpec(side)
    dim = AutoConfig.from_pretrained(cfg.vision).vision_config.out_hidden_size
    shape = (cfg.scenes, spec.tokens, dim)
    feats_path, progress_path, rows_path = out / "features.f16", out / "progress.json", out / "rows.jsonl"
    done = json.loads(progress_path.read_text())["done"] if progress_path.is_file() else 0
    if done == 0:
        rows_path.write_text("")
    else:  # drop rows written after the last finished chunk (a kill mid-chunk)
        kept = [ln for ln in rows_path.read_text().splitlines() if json.loads(ln)["scene"] < done]
        rows_path.write_text("".join(ln + "\n" for ln in kept))
    feats = np.lib.format.open_memmap(feats_path, mode="r+" if done else "w+", dtype=np.float16, shape=shape)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.vision, dtype=torch.float32)
    visual = model.model.visual.to(device).eval()
    print(f"{cfg.scenes} scenes at {side}² -> {spec.tokens} tokens x {dim}, bf16={bf16}, "
          f"on {hardware(device)}; {done} done", flush=True)
    bar = tqdm(total=cfg.scenes, initial=done, desc="scenes", unit="scene", mininterval=10)
    with ProcessPoolExecutor(max(1, cfg.workers)) as pool:
        while done < cfg.scenes:
            end = min(done + cfg.chunk, cfg.scenes)
            jobs = [(i, cfg.scene_seed, side, cfg.queries_per_image) for i in range(done, end)]
            results = list(pool.map(scene_rows, jobs, chunksize=8))
            images = np.stack([r[0] for r in results])
            for start in range(0, len(images), cfg.batch):
                pv, grid = pixel_batch(images[start : start + cfg.batch], spec)
                with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                    f = visual(torch.from_numpy(pv).to(device), grid_thw=torch.from_numpy(grid).to(device)).pooler_output
                feats[done + start : done + start + len(grid)] = f.float().view(len(grid), spec.tokens, dim).cpu().numpy()
            feats.flush()
            with rows_path.open("a", encoding="utf-8") as fh:
                for k, (_, rows) in enumerate(results):
                    for row in rows:
                        fh.write(json.dumps({"scene": done + k, **row}) + "\n")
            done = end
            progress_path.write_text(json.dumps({"done": done}))
            bar.update(len(results))
    bar.close()
    n_rows = sum(1 for _ in rows_path.open())
    return {"scenes": cfg.scenes, "rows": n_rows, "side": side, "tokens": spec.tokens, "dim": dim,
            "device": device, "bf16": bf16}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, FeatureConfig)
    cfg = dataclass_from_args(FeatureConfig, parser.parse_args(argv))
    out = Path(cfg.out)
    if (out / "report.json").is_file():
        print(f"{out}/report.json exists: stage done", flush=True)
        return 0
    with timed("cache_features", out.parent / "times.jsonl") as rec:
        result = run(cfg)
        rec.update(rows=result["rows"], where=hardware(result["device"]))
    write_json(out / "report.json", {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                                     **{k: v for k, v in result.items() if k != "device"},
                                     "where": hardware(result["device"])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
