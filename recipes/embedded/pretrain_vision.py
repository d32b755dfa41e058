"""Dense pre-training of the embedded reasoner's vision tower on synthetic ground truth.

    python recipes/embedded/pretrain_vision.py --out runs/embedded/vision [--steps N] [--image-side 336]

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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    hardware,
    pick_device,
    seed_everything,
    set_lr,
    timed,
    warmup_cosine_lr,
    write_json,
)
from reasoner_arch import IMAGE_SIDE, write_init_checkpoint
from reasoner_data import DIGIT_START


@dataclass
class PretrainConfig:
    out: Path = field(metadata={"help": "stage dir: model/ (reasoner checkpoint: pre-trained tower, fresh LM), state.pt, report.json"})
    scenes: int = field(default=6000, metadata={"help": "training scenes (train split)"})
    scene_seed: int = field(default=17, metadata={"help": "synthetic base seed of the scenes (train split)"})
    val_scenes: int = field(default=200, metadata={"help": "val-split scenes for the reported accuracies"})
    steps: int = field(default=600, metadata={"help": "optimizer steps"})
    batch: int = field(default=32, metadata={"help": "images per step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate (cosine to 5%%)"})
    warmup: int = field(default=30, metadata={"help": "linear warm-up steps"})
    min_share: float = field(default=0.15, metadata={"help": "an object labels a token when it covers this share of it"})
    box_weight: float = field(default=20.0, metadata={"help": "weight of the box regression loss"})
    digit_weight: float = field(default=4.0, metadata={"help": "weight of the mean cross-entropy of the 24 answer digits"})
    init_vision: Path | None = field(default=None, metadata={"help": "start the tower from this reasoner checkpoint's"})
    image_side: int = field(default=IMAGE_SIDE, metadata={"help": "side of the image the vision tower sees"})
    seed: int = field(default=0, metadata={"help": "init (same as sft_reasoner's fresh init), data order"})
    workers: int = field(default=2, metadata={"help": "scene rendering processes"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (CUDA, or a CPU with native bf16)"})
    save_minutes: float = field(default=3.0, metadata={"help": "write the resumable state this often"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})


def _scene(args: tuple[str, int, int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    """One scene → (side² uint8 image, token targets [T, 8])."""
    from reasoner_data import ImageSpec, reasoner_image, token_targets

    from segzero_edge.synthetic import render_scene, split_seed

    split, index, base, side, min_share = args
    scene = render_scene(split_seed(split, index, base), 512)
    spec = ImageSpec(side)
    return reasoner_image(scene.image, spec), token_targets(scene, spec, min_share)


def build_set(split: str, n: int, base: int, cfg: PretrainConfig, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, side, side, 3] uint8, targets [n, T, 8]); kept in `cache` (.npz) for resumes."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    if cache.is_file():
        from reasoner_data import TARGET_COLUMNS

        with np.load(cache) as z:
            if (z["images"].shape[0] == n and z["images"].shape[1] == cfg.image_side
                    and z["targets"].shape[-1] == len(TARGET_COLUMNS)):
                return z["images"], z["targets"]
    jobs = [(split, i, base, cfg.image_side, cfg.min_share) for i in range(n)]
    with ProcessPoolExecutor(max(1, cfg.workers)) as pool:
        res = list(tqdm(pool.map(_scene, jobs, chunksize=16), total=n, desc=f"{split} scenes", mininterval=10))
    images, targets = np.stack([r[0] for r in res]), np.stack([r[1] for r in res])
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, images=images, targets=targets)
    tmp.replace(cache)
    return images, targets


class Heads(torch.nn.Module):
    """Linear read-outs of the merged tokens (discarded after pre-training)."""

    def __init__(self, dim: int, n_colours: int, n_shapes: int, rows: int, cols: int, box_weight: float,
                 digit_weight: float) -> None:
        super().__init__()
        self.box_weight, self.digit_weight = box_weight, digit_weight
        self.digits = torch.nn.Linear(dim, 24 * 10)  # the answer's 24 digits (8 coordinates x 3 places)
        self.colour = torch.nn.Linear(dim, n_colours + 1)
        self.shape = torch.nn.Linear(dim, n_shapes + 1)
        self.box = torch.nn.Linear(dim, 4)
        self.row = torch.nn.Linear(dim, rows)
        self.col = torch.nn.Linear(dim, cols)

    def loss(self, feats, targets):
        import torch.nn.functional as F

        colour, shape = targets[:, 0].long(), targets[:, 1].long()
        row, col = targets[:, 6].long(), targets[:, 7].long()
        on = colour > 0
        parts = {
            "colour": F.cross_entropy(self.colour(feats), colour),
            "shape": F.cross_entropy(self.shape(feats), shape),
            "row": F.cross_entropy(self.row(feats), row),
            "col": F.cross_entropy(self.col(feats), col),
            "box": self.box_weight * F.smooth_l1_loss(self.box(feats[on]), targets[on, 2:6], beta=0.02)
            if on.any() else feats.sum() * 0,
            "digits": self.digit_weight * F.cross_entropy(self.digits(feats[on]).view(-1, 10),
                                                          targets[on, DIGIT_START:].long().reshape(-1))
            if on.any() else feats.sum() * 0,
        }
        return sum(parts.values()), parts

    def accuracy(self, feats, targets) -> dict[str, float]:
        with torch.no_grad():
            on = targets[:, 0] > 0
            acc = {k: float((getattr(self, k)(feats).argmax(-1) == targets[:, i].long()).float().mean())
                   for k, i in (("colour", 0), ("shape", 1), ("row", 6), ("col", 7))}
            acc["box_l1_840"] = float((self.box(feats[on]) - targets[on, 2:6]).abs().mean() * 840) if on.any() else 0.0
            if on.any():  # per decimal place, over the 8 coordinates; and the box read back from its digits
                pred = self.digits(feats[on]).view(-1, 8, 3, 10).argmax(-1)
                true = targets[on, DIGIT_START:].long().view(-1, 8, 3)
                for i, place in enumerate(("100", "10", "1")):
                    acc[f"digit_{place}"] = float((pred[..., i] == true[..., i]).float().mean())
                value = lambda d: d[..., 0] * 100 + d[..., 1] * 10 + d[..., 2]  # noqa: E731
                acc["digit_box_l1_840"] = float((value(pred) - value(true))[:, :4].abs().float().mean())
                acc["digit_point_l1_840"] = float((value(pred) - value(true))[:, 4:].abs().float().mean())
        return acc


def run(cfg: PretrainConfig) -> dict[str, Any]:
    import torch
    from common import Resumable, cpu_bf16
    from reasoner_data import ImageSpec, pixel_batch
    from tqdm.auto import tqdm
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.synthetic import COLOURS, SHAPES

    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    bf16 = cpu_bf16(device, cfg.bf16)
    out = Path(cfg.out)
    spec = ImageSpec(cfg.image_side)
    images, targets = build_set("train", cfg.scenes, cfg.scene_seed, cfg, out / "data_train.npz")
    vimages, vtargets = build_set("val", cfg.val_scenes, cfg.scene_seed, cfg, out / "data_val.npz")
    write_init_checkpoint(out / "model", cfg.seed, cfg.image_side)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out / "model", dtype=torch.float32)
    n = cfg.image_side // 28
    if cfg.init_vision is not None:  # continue from an earlier pre-training (its heads are not kept)
        start = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.init_vision, dtype=torch.float32)
        model.model.visual.load_state_dict(start.model.visual.state_dict())
        del start
    visual = model.model.visual.to(device).train()
    heads = Heads(model.config.vision_config.out_hidden_size, len(COLOURS), len(SHAPES), n, n, cfg.box_weight,
                  cfg.digit_weight).to(device)
    trained = torch.nn.ModuleDict({"visual": visual, "heads": heads})
    opt = torch.optim.AdamW(trained.parameters(), lr=cfg.lr, weight_decay=0.01)
    rng = np.random.default_rng(cfg.seed)
    state = Resumable(out / "state.pt", cfg.save_minutes * 60)
    step, log = state.restore(trained, opt, rng)
    print(f"vision tower: {sum(p.numel() for p in visual.parameters()) / 1e6:.2f} M parameters, {n}x{n} tokens "
          f"per image, {len(images)} scenes, bf16={bf16}, on {hardware(device)}; step {step} of {cfg.steps}", flush=True)

    def features(idx: np.ndarray, imgs: np.ndarray):
        pv, grid = pixel_batch(imgs[idx], spec)
        return visual(torch.from_numpy(pv).to(device), grid_thw=torch.from_numpy(grid).to(device)).pooler_output

    bar = tqdm(desc="vision pretrain", unit="step", mininterval=10, initial=step, total=cfg.steps)
    while step < cfg.steps:
        lr = warmup_cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, floor=0.05)
        set_lr(opt, lr)
        idx = rng.choice(len(images), size=cfg.batch, replace=False)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            feats = features(idx, images)
        loss, parts = heads.loss(feats.float(), torch.from_numpy(targets[idx].reshape(-1, targets.shape[-1])).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % 50 == 0 or step == 1:
            rec = {"step": step, "lr": round(lr, 6), "loss": round(loss.item(), 4),
                   **{k: round(v.item(), 4) for k, v in parts.items()}}
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if step < cfg.steps:
            state.maybe_save(step, trained, opt, rng, log)
    bar.close()
    state.save(step, trained, opt, rng, log)
    visual.eval()
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        feats = torch.cat([features(np.arange(i, min(i + 16, len(vimages))), vimages).float()
                           for i in range(0, len(vimages), 16)])
    val = heads.accuracy(feats, torch.from_numpy(vtargets.reshape(-1, vtargets.shape[-1])).to(device))
    print(json.dumps({"val": val}), flush=True)
    model.model.visual = visual.cpu()
    model.save_pretrained(out / "model")  # the processor files were written by write_init_checkpoint
    return {"steps": step, "log": log, "val": val, "device": device, "bf16": bf16}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, PretrainConfig)
    cfg = dataclass_from_args(PretrainConfig, parser.parse_args(argv))
    out = Path(cfg.out)
    if (out / "report.json").is_file():
        print(f"{out}/report.json exists: stage done", flush=True)
        return 0
    with timed("pretrain_vision", out.parent / "times.jsonl") as rec:
        result = run(cfg)
        rec.update(steps=result["steps"], where=hardware(result["device"]), **result["val"])
    write_json(out / "report.json",
               {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                "steps": result["steps"], "where": hardware(result["device"]), "bf16": result["bf16"],
                "val": result["val"], "log": result["log"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
