"""Dense pre-training of the embedded reasoner's vision tower on synthetic ground truth.

    python recipes/embedded/pretrain_vision.py --out runs/embedded/vision [--steps N]

Why: trained end to end from scratch, the small reasoner learned the answer format but not
what or where the objects are (its completions name shapes that are not in the scene, box IoU
at chance) — a few digit tokens per sample are too weak a signal for perception. Here every
merged image token gets its own targets from the scene generator's instance masks: the colour
and shape of the object covering it (or background), that object's box (840 space, /840), and
the token's own row and column. The last two make the tower encode absolute position, which a
Qwen2.5-VL vision tower (relative 2D RoPE, no absolute embedding) otherwise has no reason to
learn. Linear heads on the merger output are thrown away; the tower goes into a fresh reasoner
checkpoint (`--out`) that sft_reasoner.py continues from (`--init`).
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
from common import (
    StepBudget,
    hardware,
    pick_device,
    seed_everything,
    set_lr,
    timed,
    warmup_cosine_lr,
    write_json,
)
from reasoner_arch import IMAGE_SIDE, write_init_checkpoint


@dataclass
class PretrainConfig:
    out: Path = field(metadata={"help": "output reasoner checkpoint dir (fresh LM, pre-trained vision tower)"})
    scenes: int = field(default=3000, metadata={"help": "training scenes (train split)"})
    scene_seed: int = field(default=17, metadata={"help": "synthetic base seed of the scenes (train split)"})
    val_scenes: int = field(default=100, metadata={"help": "val-split scenes for the reported accuracies"})
    steps: int = field(default=0, metadata={"help": "optimizer steps; 0 = as many as fit in --minutes"})
    minutes: float = field(default=10.0, metadata={"help": "time budget when --steps is 0"})
    batch: int = field(default=32, metadata={"help": "images per step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate (cosine to 5%)"})
    warmup: int = field(default=30, metadata={"help": "linear warm-up steps"})
    min_share: float = field(default=0.15, metadata={"help": "an object labels a token when it covers this share of it"})
    image_side: int = field(default=IMAGE_SIDE, metadata={"help": "side of the image the vision tower sees"})
    seed: int = field(default=0, metadata={"help": "init (same as sft_reasoner's fresh init), data order"})
    workers: int = field(default=2, metadata={"help": "scene rendering processes"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})


_PROC: Any = None


def _init_worker(ckpt: str) -> None:
    global _PROC
    from segzero_edge.models.processor import load_processor

    _PROC = load_processor(ckpt)


def _scene_targets(args: tuple[str, int, int, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene → (pixel_values [P,1176] f16, grid [3], token targets [T, 8] f32:
    colour, shape, x1, y1, x2, y2 (/840; -1 for background), row, col)."""
    from PIL import Image

    from segzero_edge.prompts import resize_for_reasoner
    from segzero_edge.synthetic import COLOURS, SHAPES, render_scene, split_seed

    split, index, base, min_share = args
    scene = render_scene(split_seed(split, index, base), 512)
    out = _PROC.image_processor(images=[resize_for_reasoner(Image.fromarray(scene.image))], return_tensors="np")
    grid = out["image_grid_thw"][0]
    merge = _PROC.image_processor.merge_size
    rows, cols = int(grid[1]) // merge, int(grid[2]) // merge
    h, w = scene.image.shape[:2]
    colour_ids, shape_ids = {c: i + 1 for i, c in enumerate(COLOURS)}, {s: i + 1 for i, s in enumerate(SHAPES)}
    targets = np.zeros((rows * cols, 8), np.float32)
    targets[:, 2:6] = -1.0
    share = np.zeros((len(scene.objects), rows, cols), np.float32)
    for k, obj in enumerate(scene.objects):  # visible-mask share of each token cell
        m = obj.mask[: h - h % rows or h, : w - w % cols or w]
        share[k] = m.reshape(rows, m.shape[0] // rows, cols, m.shape[1] // cols).mean((1, 3))
    best = share.argmax(0)
    for r in range(rows):
        for c in range(cols):
            t = targets[r * cols + c]
            t[6], t[7] = r, c
            k = int(best[r, c])
            if share[k, r, c] >= min_share:
                obj = scene.objects[k]
                x1, y1, x2, y2 = obj.bbox
                t[0], t[1] = colour_ids[obj.colour], shape_ids[obj.shape]
                t[2:6] = (x1 / w, y1 / h, x2 / w, y2 / h)  # /840 in Seg-Zero's 840 space
    return out["pixel_values"].astype(np.float16), grid, targets


def build_set(split: str, n: int, base: int, cfg: PretrainConfig, ckpt: Path):
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    jobs = [(split, i, base, cfg.min_share) for i in range(n)]
    with ProcessPoolExecutor(max(1, cfg.workers), initializer=_init_worker, initargs=(str(ckpt),)) as pool:
        res = list(tqdm(pool.map(_scene_targets, jobs, chunksize=8), total=n, desc=f"{split} scenes", mininterval=10))
    return (np.stack([r[0] for r in res]), np.stack([r[1] for r in res]), np.stack([r[2] for r in res]))


class Heads:
    """Linear read-outs of the merged tokens (discarded after pre-training)."""

    def __init__(self, dim: int, n_colours: int, n_shapes: int, rows: int, cols: int, device: str) -> None:
        import torch

        self.modules = torch.nn.ModuleDict({
            "colour": torch.nn.Linear(dim, n_colours + 1), "shape": torch.nn.Linear(dim, n_shapes + 1),
            "box": torch.nn.Linear(dim, 4), "row": torch.nn.Linear(dim, rows), "col": torch.nn.Linear(dim, cols),
        }).to(device)

    def loss(self, feats, targets):
        import torch.nn.functional as F

        m = self.modules
        colour, shape = targets[:, 0].long(), targets[:, 1].long()
        row, col = targets[:, 6].long(), targets[:, 7].long()
        on = colour > 0
        parts = {
            "colour": F.cross_entropy(m["colour"](feats), colour),
            "shape": F.cross_entropy(m["shape"](feats), shape),
            "row": F.cross_entropy(m["row"](feats), row),
            "col": F.cross_entropy(m["col"](feats), col),
            "box": 10 * F.smooth_l1_loss(m["box"](feats[on]), targets[on, 2:6], beta=0.05) if on.any() else feats.sum() * 0,
        }
        return sum(parts.values()), parts

    def accuracy(self, feats, targets) -> dict[str, float]:
        import torch

        m = self.modules
        with torch.no_grad():
            on = targets[:, 0] > 0
            acc = {k: float((m[k](feats).argmax(-1) == targets[:, i].long()).float().mean())
                   for k, i in (("colour", 0), ("shape", 1), ("row", 6), ("col", 7))}
            acc["box_l1_840"] = float((m["box"](feats[on]) - targets[on, 2:6]).abs().mean() * 840) if on.any() else 0.0
        return acc


def run(cfg: PretrainConfig) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.synthetic import COLOURS, SHAPES

    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    write_init_checkpoint(out, cfg.seed, cfg.image_side)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out, dtype=torch.float32)
    visual = model.model.visual.to(device).train()
    pix, grids, targets = build_set("train", cfg.scenes, cfg.scene_seed, cfg, out)
    vpix, vgrids, vtargets = build_set("val", cfg.val_scenes, cfg.scene_seed, cfg, out)
    merge = model.config.vision_config.spatial_merge_size
    rows, cols = int(grids[0][1]) // merge, int(grids[0][2]) // merge
    heads = Heads(model.config.vision_config.out_hidden_size, len(COLOURS), len(SHAPES), rows, cols, device)
    params = list(visual.parameters()) + list(heads.modules.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    rng = np.random.default_rng(cfg.seed)
    budget = StepBudget(cfg.steps, cfg.minutes, probe=min(10, cfg.warmup))
    print(f"vision tower: {sum(p.numel() for p in visual.parameters()) / 1e6:.2f} M parameters, "
          f"{rows}x{cols} tokens per image, {len(pix)} scenes on {hardware(device)}", flush=True)

    def features(p: np.ndarray, g: np.ndarray):
        x = torch.from_numpy(p.reshape(-1, p.shape[-1])).float().to(device)
        return visual(x, grid_thw=torch.from_numpy(g).long().to(device)).pooler_output

    log: list[dict[str, Any]] = []
    bar = tqdm(desc="vision pretrain", unit="step", mininterval=10)
    step = 0
    while step < budget.total(step):
        total = budget.total(step)
        lr = warmup_cosine_lr(step, total, cfg.lr, cfg.warmup, floor=0.05)
        set_lr(opt, lr)
        idx = rng.choice(len(pix), size=cfg.batch, replace=False)
        loss, parts = heads.loss(features(pix[idx], grids[idx]),
                                 torch.from_numpy(targets[idx].reshape(-1, 8)).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % 50 == 0 or step == 1:
            rec = {"step": step, "lr": round(lr, 6), "loss": round(loss.item(), 4),
                   **{k: round(v.item(), 4) for k, v in parts.items()}}
            log.append(rec)
            print(json.dumps(rec), flush=True)
    bar.close()
    visual.eval()
    with torch.no_grad():
        val = heads.accuracy(torch.cat([features(vpix[i:i + 16], vgrids[i:i + 16]) for i in range(0, len(vpix), 16)]),
                             torch.from_numpy(vtargets.reshape(-1, 8)).to(device))
    print(json.dumps({"val": val}), flush=True)
    model.model.visual = visual.cpu()
    model.save_pretrained(out)  # the processor files were written by write_init_checkpoint
    return {"steps": step, "log": log, "val": val, "device": device}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, PretrainConfig)
    cfg = dataclass_from_args(PretrainConfig, parser.parse_args(argv))
    with timed("pretrain_vision", Path(cfg.out).parent / "times.jsonl") as rec:
        result = run(cfg)
        rec.update(steps=result["steps"], where=hardware(result["device"]), **result["val"])
    write_json(Path(cfg.out) / "pretrain_report.json",
               {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                "steps": result["steps"], "where": hardware(result["device"]), "val": result["val"],
                "log": result["log"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
