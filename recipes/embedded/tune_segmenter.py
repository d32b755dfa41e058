"""Stage 2 of the segmenter: fine-tune the prompt encoder + mask decoder of a trained segmenter
with the image encoder frozen, so that all 3 multimask outputs learn the (unambiguous) target.

    python recipes/embedded/tune_segmenter.py --init runs/embedded/segmenter --out runs/embedded/segmenter2

Why: stage 1 trains SAM's best-of-3 loss; at our scale one output per prompt came out right
(IoU ~0.93-0.98) while the IoU head, which Seg-Zero's pipeline uses to pick the output, stayed
constant, so the pick was mostly wrong (val gIoU 0.19). A box + two positive points is not
ambiguous, so here every output is trained towards the target ("mean" loss) and the IoU head
keeps learning. With the encoder frozen its features are computed once per scene (a cache of
`cache_scenes` fresh training scenes), which makes this stage cheap enough for a CPU.
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
from train_segmenter import (
    evaluate,
    jitter_boxes,
    losses,
    pixels,
    reset_prompt_side,
    soft_targets,
    tie_positional_bases,
    val_samples,
)


@dataclass
class TuneConfig:
    init: Path = field(metadata={"help": "segmenter to tune: train_segmenter.py's model/, any transformers SAM2 folder, or a Meta SAM2 checkpoint file (.pt)"})
    out: Path = field(metadata={"help": "stage dir: model/ (save_pretrained), state.pt, report.json"})
    steps: int = field(default=3000, metadata={"help": "optimizer steps"})
    cache_scenes: int = field(default=600, metadata={"help": "training scenes whose encoder features are cached"})
    scene_offset: int = field(default=1_000_000, metadata={"help": "first scene index (past stage 1's scenes)"})
    images_per_step: int = field(default=8, metadata={"help": "scenes per step"})
    objects_per_image: int = field(default=4, metadata={"help": "prompts per scene per step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW peak learning rate"})
    warmup: int = field(default=100, metadata={"help": "linear warm-up steps (then cosine to 2%%)"})
    box_only: float = field(default=0.25, metadata={"help": "share of steps with box-only prompts"})
    jitter: float = field(default=0.3, metadata={"help": "share of boxes jittered (sigma up to 10%% of the side)"})
    multimask: str = field(default="mean", metadata={"help": "mean (all 3 outputs) or min (best of 3)"})
    scene_seed: int = field(default=7, metadata={"help": "synthetic base seed of the training scenes"})
    val: int = field(default=300, metadata={"help": "val and test queries to evaluate on"})
    seed: int = field(default=1, metadata={"help": "decoder init / prompt sampling seed"})
    reinit_decoder: bool = field(default=True, metadata={"help": "re-initialise prompt encoder + mask decoder"})
    tie_positions: bool = field(default=True, metadata={"help": "give the prompt encoder the image's position basis"})
    head_only: bool = field(default=False, metadata={"help": "train only the IoU head (keeps every mask output as it is)"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (CUDA, or a CPU with native bf16)"})
    save_minutes: float = field(default=3.0, metadata={"help": "write the resumable state this often"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})


def encode_cache(model, cfg: TuneConfig, device: str) -> list[dict[str, Any]]:
    """Per scene: fp16 encoder features, every object's soft low-res target, box and points."""
    import torch
    from tqdm.auto import tqdm

    from segzero_edge.geometry import reference_points
    from segzero_edge.synthetic import render_scene, split_seed

    side = int(model.config.prompt_encoder_config.image_size)
    cache = []
    for i in tqdm(range(cfg.cache_scenes), desc="encode scenes", mininterval=10):
        scene = render_scene(split_seed("train", cfg.scene_offset + i, cfg.scene_seed), 512)
        objs = [o for o in scene.objects if o.area > 0]
        masks = torch.from_numpy(np.stack([o.mask for o in objs]))[None]
        with torch.no_grad():
            feats = model.get_image_embeddings(pixels(torch.from_numpy(scene.image[None]), device, side))
        cache.append({
            "feats": [f.half().cpu() for f in feats],
            "target": soft_targets(masks, side // 4)[0].half(),
            "boxes": torch.tensor([o.bbox for o in objs], dtype=torch.float32),
            "points": torch.tensor([reference_points(o.mask) for o in objs], dtype=torch.float32),
            "size": scene.image.shape[:2],
        })
    return cache


def batch_from_cache(cache, cfg: TuneConfig, rng: np.random.Generator, device: str):
    import torch

    scenes = rng.choice(len(cache), size=cfg.images_per_step, replace=False)
    feats = [torch.cat([cache[s]["feats"][k] for s in scenes]).float().to(device) for k in range(3)]
    boxes, points, target = [], [], []
    for s in scenes:
        c = cache[s]
        pick = rng.choice(len(c["boxes"]), size=cfg.objects_per_image, replace=len(c["boxes"]) < cfg.objects_per_image)
        boxes.append(c["boxes"][pick])
        points.append(c["points"][pick])
        target.append(c["target"][pick].float())
    return feats, torch.stack(boxes).to(device), torch.stack(points).to(device), torch.stack(target).to(device)


def tune(cfg: TuneConfig) -> dict[str, Any]:
    import torch
    from common import Resumable, cpu_bf16
    from tqdm.auto import tqdm

    from segzero_edge.models.segmenter import load_sam2

    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    bf16 = cpu_bf16(device, cfg.bf16)
    model = load_sam2(cfg.init, dtype=torch.float32).to(device).eval()  # a folder or a Meta .pt
    if cfg.reinit_decoder:
        torch.manual_seed(cfg.seed)
        reset_prompt_side(model)
    if cfg.tie_positions:
        tie_positional_bases(model)
    for p in model.vision_encoder.parameters():
        p.requires_grad_(False)
    if cfg.head_only:  # the masks stay bit-identical; only which one the pipeline picks changes
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("mask_decoder.iou_prediction_head."))
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    side = int(model.config.prompt_encoder_config.image_size)
    print(f"tuning {sum(p.numel() for p in trainable) / 1e6:.3f} M of {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters at {side}², bf16={bf16}, on {hardware(device)}", flush=True)
    cache_file = Path(cfg.out) / "features.pt"
    if cache_file.is_file():
        cache = torch.load(cache_file, weights_only=True)  # our own file: tensors, ints and tuples only
    else:
        cache = encode_cache(model, cfg, device)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, cache_file.with_suffix(".tmp"))
        cache_file.with_suffix(".tmp").replace(cache_file)
    h, w = cache[0]["size"]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=0.01)
    rng = np.random.default_rng(cfg.seed)
    state = Resumable(Path(cfg.out) / "state.pt", cfg.save_minutes * 60)
    step, log = state.restore(model, opt, rng)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + step)
    scale = torch.tensor([side / w, side / h], device=device)
    model.train()
    bar = tqdm(desc="tune segmenter", unit="step", mininterval=10, initial=step, total=cfg.steps)
    while step < cfg.steps:
        lr = warmup_cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, floor=0.02)
        set_lr(opt, lr)
        feats, boxes, points, target = batch_from_cache(cache, cfg, rng, device)
        boxes = jitter_boxes(boxes, cfg.jitter, h, w, gen, max_sigma=0.1)
        kwargs: dict[str, Any] = {"input_boxes": boxes * scale.repeat(2)}
        if torch.rand((), generator=gen, device=device).item() >= cfg.box_only:
            kwargs["input_points"] = points * scale
            kwargs["input_labels"] = torch.ones(points.shape[:3], dtype=torch.long, device=device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = model(image_embeddings=feats, multimask_output=True, **kwargs)
        loss, parts = losses(out.pred_masks, out.iou_scores, out.object_score_logits, target, cfg.multimask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % 50 == 0 or step == 1:
            rec = {"step": step, "lr": round(lr, 6), "loss": round(loss.item(), 4), **{k: round(v, 4) for k, v in parts.items()}}
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if step < cfg.steps:
            state.maybe_save(step, model, opt, rng, log)
    bar.close()
    state.save(step, model, opt, rng, log)
    return {"model": model, "steps": step, "log": log, "device": device, "bf16": bf16}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, TuneConfig)
    cfg = dataclass_from_args(TuneConfig, parser.parse_args(argv))
    out = Path(cfg.out)
    if (out / "report.json").is_file():
        print(f"{out}/report.json exists: stage done", flush=True)
        return 0
    timing = out.parent / "times.jsonl"
    with timed("tune_segmenter", timing) as rec:
        result = tune(cfg)
        rec.update(steps=result["steps"], where=hardware(result["device"]))
    model = result["model"].eval()
    model.save_pretrained(out / "model")
    metrics: dict[str, Any] = {}
    with timed("eval_segmenter_tuned", timing) as rec:
        for split in ("val", "test"):
            metrics |= evaluate(model, val_samples(cfg.val, split), result["device"], prefix=split)
        rec.update(metrics)
    report = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "steps": result["steps"], "where": hardware(result["device"]), "bf16": result["bf16"], **metrics,
              "log": result["log"]}
    write_json(out / "report.json", report)
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
