"""Train the embedded default's segmenter: a small SAM2-architecture `Sam2Model`, from scratch,
on synthetic shapes scenes, with Seg-Zero's prompts (box + two positive reference points) and
box-only prompts, plus jittered boxes (a reasoner's boxes are never exact).

    python recipes/embedded/train_segmenter.py --out runs/embedded/segmenter [--steps N | --minutes M]

Data: fresh scenes rendered on the fly from the synthetic train seed range under base seed
`scene_seed` (disjoint from the val/test splits), several objects per image. Loss, as SAM:
BCE + dice of each of the 3 multimask outputs against the area-downsampled mask at the low-res
grid (input / 4), all 3 pulled to the target (`mean`: a box + 2 points is unambiguous), the IoU head regressed (MSE) to each output's real IoU,
and the object-score head pushed to "present". Validation is the pipeline's own call on the
val split's query targets: box (and box + 2 points) from Seg-Zero's 840-space ground truth,
rescaled to the image, mask = the output with the highest predicted IoU, upsampled, > 0.
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
    hardware,
    pick_device,
    seed_everything,
    set_lr,
    timed,
    warmup_cosine_lr,
    write_json,
)

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)

#: The shipped segmenter's architecture: sam2.1-hiera-tiny's structure, narrow (about 1M params).
SEGMENTER_OVERRIDES: dict[str, Any] = {
    "backbone_config": {
        "hidden_size": 24,
        "embed_dim_per_stage": [24, 48, 96, 192],
        "num_attention_heads_per_stage": [1, 1, 2, 4],
        "blocks_per_stage": [1, 2, 3, 1],
        "global_attention_blocks": [5],
    },
    "vision_config": {"backbone_channel_list": [192, 96, 48, 24], "fpn_hidden_size": 64},
    "prompt_encoder_config": {"hidden_size": 64},
    "mask_decoder_config": {"hidden_size": 64, "mlp_dim": 256, "num_attention_heads": 4, "iou_head_hidden_dim": 64},
}


@dataclass
class SegConfig:
    out: Path = field(metadata={"help": "stage dir: model/ (save_pretrained), state.pt (resume), report.json"})
    steps: int = field(default=2000, metadata={"help": "optimizer steps"})
    image_size: int = field(default=384, metadata={"help": "encoder input side (multiple of 64); the manifest records it"})
    images_per_step: int = field(default=8, metadata={"help": "scenes per step"})
    objects_per_image: int = field(default=4, metadata={"help": "prompts (objects) per scene per step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay"})
    warmup: int = field(default=100, metadata={"help": "linear warm-up steps (then cosine to 2%%)"})
    box_only: float = field(default=0.25, metadata={"help": "share of steps with box-only prompts"})
    jitter: float = field(default=0.3, metadata={"help": "share of boxes jittered (sigma up to 10%% of the side)"})
    size: int = field(default=512, metadata={"help": "scene size in pixels (the data's size)"})
    seed: int = field(default=0, metadata={"help": "weight init / prompt sampling seed"})
    scene_seed: int = field(default=7, metadata={"help": "synthetic base seed of the training scenes (train range)"})
    val: int = field(default=300, metadata={"help": "val and test queries to evaluate on (base seed 0, as the data)"})
    workers: int = field(default=1, metadata={"help": "scene-rendering worker processes"})
    init_style: str = field(default="sam", metadata={"help": "sam (PyTorch init of the prompt side, tied position bases) or hf"})
    multimask: str = field(default="mean", metadata={"help": "mean: all 3 outputs learn the target; min: best of 3 (SAM)"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (CUDA, or a CPU with native bf16)"})
    save_minutes: float = field(default=3.0, metadata={"help": "write the resumable state this often"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})

    def __post_init__(self) -> None:
        if self.init_style not in ("hf", "sam"):
            raise ValueError(f"init_style must be hf or sam, got {self.init_style!r}")
        if self.multimask not in ("min", "mean"):
            raise ValueError(f"multimask must be min or mean, got {self.multimask!r}")
        if self.images_per_step < 1 or self.objects_per_image < 1 or self.steps < 1:
            raise ValueError("steps, images_per_step and objects_per_image must be >= 1")
        if not (0 <= self.box_only <= 1 and 0 <= self.jitter <= 1):
            raise ValueError(f"box_only and jitter are shares in [0, 1], got {self.box_only}, {self.jitter}")
        if self.image_size % 64 or not 128 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be a multiple of 64 in 128..1024, got {self.image_size}")


def segmenter_config(image_size: int = 1024):
    """`Sam2Config` of the shipped segmenter at encoder input `image_size`: every size-dependent
    field (Hiera input, FPN feature sizes, prompt encoder) follows it; the low-res masks come out
    at image_size / 4."""
    import copy

    from segzero_edge.testing import tiny_segmenter_config

    over = copy.deepcopy(SEGMENTER_OVERRIDES)
    over["backbone_config"]["image_size"] = [image_size, image_size]
    over["vision_config"]["backbone_feature_sizes"] = [[image_size // s] * 2 for s in (4, 8, 16)]
    over["prompt_encoder_config"]["image_size"] = image_size
    return tiny_segmenter_config(**over)


def build_model(seed: int, init_style: str = "sam", image_size: int = 1024):
    """A freshly initialised `Sam2Model` with `SEGMENTER_OVERRIDES`. `init_style`: "hf" is
    transformers' init as is (what the shipped stage 1 used); "sam" re-draws the prompt side
    with PyTorch's defaults and ties the two position bases, as Meta's SAM2 has them."""
    import torch
    from transformers import Sam2Model

    if init_style not in ("hf", "sam"):
        raise ValueError(f"init_style must be hf or sam, got {init_style!r}")
    torch.manual_seed(seed)
    model = Sam2Model(segmenter_config(image_size))
    if init_style == "sam":
        reset_prompt_side(model)
        tie_positional_bases(model)
    return model


def reset_prompt_side(model) -> None:
    """PyTorch's default init (as Meta's SAM2 code uses) for the prompt encoder and mask decoder.

    transformers' init draws every weight with std 0.02; at this width that leaves the prompt
    path so weak that best-of-3 training settles on prompt-independent masks (measured: stage 1
    gave the same 3 masks for every box of an image)."""
    # conv_s0 / conv_s1 project the encoder's high-res maps inside get_image_embeddings (they
    # belong to the encoder side of the encode/decode split), so they keep their weights.
    encoder_side = {model.mask_decoder.conv_s0, model.mask_decoder.conv_s1}
    for module in (model.prompt_encoder, model.mask_decoder):
        for sub in module.modules():
            if hasattr(sub, "reset_parameters") and sub is not module and sub not in encoder_side:
                sub.reset_parameters()


def tie_positional_bases(model) -> None:
    """Give the prompt encoder the image's random-Fourier position basis.

    SAM2 has ONE random matrix for image and prompt positions, so a prompt at (x, y) is encoded
    like the image location (x, y); transformers keeps two buffers and its init draws them
    independently. Untied, box and points live in an unrelated basis and the decoder barely
    learns to follow the prompt (measured: stage 1 without this guessed 3 objects per prompt).
    """
    import torch

    with torch.no_grad():
        model.prompt_encoder.shared_embedding.positional_embedding.copy_(
            model.shared_image_embedding.positional_embedding
        )


# --- data ---------------------------------------------------------------------------------


def scene_item(index: int, cfg: SegConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Render training scene `index`; pick `objects_per_image` of its objects (with replacement
    when it has fewer) and return image, masks, inclusive boxes and reference points."""
    from segzero_edge.geometry import reference_points
    from segzero_edge.synthetic import render_scene, split_seed

    scene = render_scene(split_seed("train", index, cfg.scene_seed), cfg.size)
    objs = [o for o in scene.objects if o.area > 0]
    pick = rng.choice(len(objs), size=cfg.objects_per_image, replace=len(objs) < cfg.objects_per_image)
    chosen = [objs[int(i)] for i in pick]
    return {
        "image": scene.image,
        "masks": np.stack([o.mask for o in chosen]),
        "boxes": np.array([o.bbox for o in chosen], dtype=np.float32),
        "points": np.array([reference_points(o.mask) for o in chosen], dtype=np.float32),
    }


def scene_stream(cfg: SegConfig, offset: int = 0):
    """An endless IterableDataset of `scene_item`s; worker w renders scenes offset + w, + W, ..."""
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    class Stream(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            wid, n = (info.id, info.num_workers) if info else (0, 1)
            rng = np.random.default_rng([cfg.seed, wid, offset])
            index = offset + wid
            while True:
                yield {k: torch.from_numpy(v) for k, v in scene_item(index, cfg, rng).items()}
                index += n

    return Stream()


# --- model I/O (shared with the evaluation) -------------------------------------------------


def pixels(images, device, image_size: int = 1024):
    """uint8 [B,H,W,3] → normalised [B,3,S,S]: bilinear with antialiasing, as the runtime's resize
    (SAM2Transforms' Resize), which matters when S is below the image size."""
    import torch
    import torch.nn.functional as F

    x = images.to(device).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def jitter_boxes(boxes, share: float, h: int, w: int, gen, max_sigma: float = 0.15):
    """Perturb a `share` of [B,N,4] pixel boxes by N(0, s * side), s ~ U(0, max_sigma) per box."""
    import torch

    side = torch.stack([boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]], -1).clamp(min=4)
    side = side.repeat(1, 1, 2)  # (w, h, w, h)
    sigma = torch.rand((*boxes.shape[:2], 1), generator=gen, device=boxes.device) * max_sigma
    noise = torch.randn(boxes.shape, generator=gen, device=boxes.device) * sigma * side
    keep = torch.rand((*boxes.shape[:2], 1), generator=gen, device=boxes.device) >= share
    out = torch.where(keep, boxes, boxes + noise)
    x1 = torch.minimum(out[..., 0], out[..., 2]).clamp(0, w - 1)
    x2 = torch.maximum(out[..., 0], out[..., 2]).clamp(0, w - 1)
    y1 = torch.minimum(out[..., 1], out[..., 3]).clamp(0, h - 1)
    y2 = torch.maximum(out[..., 1], out[..., 3]).clamp(0, h - 1)
    return torch.stack([x1, y1, x2, y2], -1)


def forward(model, pix, boxes, points, h: int, w: int):
    """Prompts in image pixels → (logits [B,N,3,S/4,S/4], iou [B,N,3], object score [B,N,1]).
    `points` None = box only. Coordinates to S space as the runtime: x * S / W (S = pix side)."""
    import torch

    side = pix.shape[-1]
    scale = torch.tensor([side / w, side / h], device=pix.device)
    kwargs: dict[str, Any] = {"input_boxes": boxes * scale.repeat(2)}
    if points is not None:
        kwargs["input_points"] = points * scale
        kwargs["input_labels"] = torch.ones(points.shape[:3], dtype=torch.long, device=pix.device)
    out = model(pixel_values=pix, multimask_output=True, **kwargs)
    return out.pred_masks, out.iou_scores, out.object_score_logits


def soft_targets(masks, size: int = 256):
    """bool masks [B,N,H,W] → area-downsampled float targets [B,N,size,size] (the low-res grid):
    a cell's target is the share it covers, so the bilinear-upsampled logits cross 0 where the
    boundary is (the oracle of this at 96² reaches mask IoU 0.973 on val, 0.990 at 128²)."""
    import torch.nn.functional as F

    b, n = masks.shape[:2]
    return F.interpolate(masks.float().flatten(0, 1)[:, None], size=(size, size), mode="area").view(b, n, size, size)


def losses(logits, iou_pred, obj, target, multimask: str = "min"):
    """BCE + dice per output mask against the soft target [B,N,s,s]; `min`: only the best of
    the 3 outputs learns (SAM's ambiguity training), `mean`: all 3 learn the (unambiguous) target.
    Plus IoU-head MSE to each output's real IoU and object-score BCE towards "present"."""
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    target = target[:, :, None].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((-1, -2))
    prob = logits.sigmoid()
    inter = (prob * target).sum((-1, -2))
    dice = 1 - (2 * inter + 1) / (prob.sum((-1, -2)) + target.sum((-1, -2)) + 1)
    per_mask = bce + dice  # [B,N,3]
    mask_loss = per_mask.min(-1).values.mean() if multimask == "min" else per_mask.mean()
    with torch.no_grad():
        hard, gt = logits > 0, target > 0.5
        real_iou = (hard & gt).sum((-1, -2)).float() / (hard | gt).sum((-1, -2)).clamp(min=1).float()
    iou_loss = F.mse_loss(iou_pred.float(), real_iou)
    obj_loss = F.binary_cross_entropy_with_logits(obj.float(), torch.ones_like(obj.float()))
    return mask_loss + iou_loss + 0.1 * obj_loss, {"mask": mask_loss.item(), "iou_mse": iou_loss.item()}


# --- evaluation -----------------------------------------------------------------------------


def val_samples(n: int, split: str = "val") -> list[dict[str, Any]]:
    """The first n queries of `split` (base seed 0, 512 px: the data's splits) with Seg-Zero's
    ground truth rescaled from 840 space to the image, as a perfect reasoner would answer."""
    from segzero_edge.answer import Answer
    from segzero_edge.synthetic import generate_split

    out = []
    for s in generate_split(split, n, 0, 512):
        h, w = s.mask.shape
        a = Answer(bbox=s.bbox, points=s.points).rescale(w, h)
        out.append({"image": s.scene.image, "mask": s.mask, "box": a.bbox, "points": a.points})
    return out


def evaluate(model, samples: list[dict[str, Any]], device: str, batch: int = 16, prefix: str = "val",
             bf16: bool = False) -> dict[str, float]:
    """Mean mask IoU (gIoU) with box-only and box + 2 points prompts; best-scored of 3 masks."""
    import torch
    import torch.nn.functional as F

    side = int(model.config.prompt_encoder_config.image_size)
    model.eval()
    ious: dict[str, list[float]] = {"box": [], "box_points": []}
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            images = torch.from_numpy(np.stack([s["image"] for s in chunk]))
            h, w = images.shape[1:3]
            pix = pixels(images, device, side)
            boxes = torch.tensor([[s["box"]] for s in chunk], dtype=torch.float32, device=device)
            pts = torch.tensor([[s["points"]] for s in chunk], dtype=torch.float32, device=device)
            gt = torch.from_numpy(np.stack([s["mask"] for s in chunk])).to(device)
            for mode, p in (("box", None), ("box_points", pts)):
                logits, iou, _ = forward(model, pix, boxes, p, h, w)
                best = iou[:, 0].float().argmax(-1)
                low = logits[torch.arange(len(chunk)), 0, best].float()
                full = F.interpolate(low[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0] > 0
                inter = (full & gt).sum((-1, -2)).float()
                union = (full | gt).sum((-1, -2)).float()
                ious[mode] += (inter / union.clamp(min=1)).tolist()
    model.train()
    return {f"{prefix}_giou_{k}": float(np.mean(v)) for k, v in ious.items()} | {f"{prefix}_n": len(samples)}


# --- training -------------------------------------------------------------------------------


def train(cfg: SegConfig) -> dict[str, Any]:
    import torch
    from common import Resumable, cpu_bf16
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    bf16 = cpu_bf16(device, cfg.bf16)
    model = build_model(cfg.seed, cfg.init_style, cfg.image_size).to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    state = Resumable(Path(cfg.out) / "state.pt", cfg.save_minutes * 60)
    step, log = state.restore(model, opt)
    # the scene stream restarts at a fresh offset after a resume: no scene is seen twice in a row
    loader = DataLoader(scene_stream(cfg, offset=step * cfg.images_per_step), batch_size=cfg.images_per_step,
                        num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                        prefetch_factor=4 if cfg.workers else None)
    batches = iter(loader)
    print(f"segmenter: {n_params / 1e6:.2f} M parameters, input {cfg.image_size}², bf16={bf16}, "
          f"on {hardware(device)}; step {step} of {cfg.steps}", flush=True)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + step)
    bar = tqdm(desc="segmenter", unit="step", mininterval=10, initial=step, total=cfg.steps)
    while step < cfg.steps:
        batch = next(batches)
        lr = warmup_cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, floor=0.02)
        set_lr(opt, lr)
        images = batch["image"]
        h, w = images.shape[1:3]
        pix = pixels(images, device, cfg.image_size)
        boxes = jitter_boxes(batch["boxes"].to(device), cfg.jitter, h, w, gen, max_sigma=0.1)
        box_only = torch.rand((), generator=gen, device=device).item() < cfg.box_only
        points = None if box_only else batch["points"].to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits, iou, obj = forward(model, pix, boxes, points, h, w)
        target = soft_targets(batch["masks"].to(device), logits.shape[-1])
        loss, parts = losses(logits, iou, obj, target, cfg.multimask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % 50 == 0 or step == 1:
            rec = {"step": step, "lr": round(lr, 6), "loss": round(loss.item(), 4), **{k: round(v, 4) for k, v in parts.items()}}
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if step < cfg.steps:
            state.maybe_save(step, model, opt, log=log)
    bar.close()
    state.save(step, model, opt, log=log)
    return {"model": model, "steps": step, "log": log, "params": n_params, "device": device, "bf16": bf16}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, SegConfig)
    cfg = dataclass_from_args(SegConfig, parser.parse_args(argv))
    out = Path(cfg.out)
    if (out / "report.json").is_file():
        print(f"{out}/report.json exists: stage done", flush=True)
        return 0
    timing = out.parent / "times.jsonl"
    with timed("train_segmenter", timing) as rec:
        result = train(cfg)
        rec.update(steps=result["steps"], where=hardware(result["device"]))
    model = result["model"]
    model.save_pretrained(out / "model")
    metrics: dict[str, Any] = {}
    with timed("eval_segmenter", timing) as rec:
        for split in ("val", "test"):
            metrics |= evaluate(model, val_samples(cfg.val, split), result["device"], prefix=split)
        rec.update(metrics)
    report = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "steps": result["steps"], "params": result["params"], "overrides": SEGMENTER_OVERRIDES,
              "where": hardware(result["device"]), "bf16": result["bf16"], **metrics, "log": result["log"]}
    write_json(out / "report.json", report)
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
