"""Supervised stage of the embedded reasoner: grounded Seg-Zero completions on cached vision features.

    python recipes/embedded/sft_reasoner.py --init runs/embedded/vision/model \
        --features runs/embedded/features --data runs/embedded/data --out runs/embedded/sft

The reasoner (`reasoner_arch`: a small Qwen2.5-VL) starts from the vision stage's checkpoint
(pre-trained tower, fresh language model). The tower stays frozen, so each scene's features come
from `cache_features.py` and a step is language-model only. The targets are grounded
completions: `<think>` lists every object with its 840-space box, reasons over that list, and
names the target with its box; `<answer>` copies that box and adds the two points. The loss
covers the completion tokens only, after Seg-Zero's exact chat prompt. `--families` keeps only
some query families (the perception-only recipe: `unique,attribute`). At the end it greedy-decodes
`eval_rows` val rows through the full model (real images, the checkpoint's own processor) and
reports parse rate, mean box IoU and Seg-Zero's reward components.
"""

from __future__ import annotations

import argparse
import io
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
from reasoner_arch import copy_processor_files


@dataclass
class SftConfig:
    init: Path = field(metadata={"help": "reasoner checkpoint to start from (pretrain_vision's model/)"})
    features: Path = field(metadata={"help": "cache_features.py stage dir (features.f16, rows.jsonl)"})
    data: Path = field(metadata={"help": "dataset dir with val.parquet (make_data.py) for the end-of-stage eval"})
    out: Path = field(metadata={"help": "stage dir: model/ (HF checkpoint + processor files), state.pt, report.json"})
    steps: int = field(default=3000, metadata={"help": "optimizer steps"})
    batch: int = field(default=16, metadata={"help": "sequences per step"})
    lr: float = field(default=1e-3, metadata={"help": "AdamW peak learning rate"})
    min_lr: float = field(default=0.05, metadata={"help": "final learning rate as a share of the peak (cosine)"})
    warmup: int = field(default=100, metadata={"help": "linear warm-up steps"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    families: str = field(default="", metadata={"help": "comma-separated query families to keep (empty = all)"})
    eval_rows: int = field(default=96, metadata={"help": "val rows greedy-decoded at the end (0 = skip)"})
    seed: int = field(default=0, metadata={"help": "data order"})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (CUDA, or a CPU with native bf16)"})
    save_minutes: float = field(default=3.0, metadata={"help": "write the resumable state this often"})
    log_every: int = field(default=50, metadata={"help": "log the loss every N steps"})
    workers: int = field(default=2, metadata={"help": "image preprocessing processes for the eval"})
    device: str = field(default="auto", metadata={"help": "auto, cuda or cpu"})

    def __post_init__(self) -> None:
        if self.batch < 1 or self.warmup < 1 or self.steps < 1:
            raise ValueError(f"steps, batch and warmup must be >= 1, got {self.steps}, {self.batch}, {self.warmup}")


# --- data -----------------------------------------------------------------------------------

_PROC: Any = None


def _init_worker(ckpt: str) -> None:
    global _PROC
    from segzero_edge.models.processor import load_processor

    _PROC = load_processor(ckpt)


def _pixels(png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """PNG bytes → (pixel_values [P, 1176] float16, grid [3]) through the checkpoint's processor."""
    from PIL import Image

    from segzero_edge.prompts import resize_for_reasoner

    with Image.open(io.BytesIO(png)) as img:
        resized = resize_for_reasoner(img.convert("RGB"))
    out = _PROC.image_processor(images=[resized], return_tensors="np")
    return out["pixel_values"].astype(np.float16), out["image_grid_thw"][0]


def read_rows(path: Path, columns: list[str], limit: int | None = None) -> dict[str, list]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=columns)
    if limit is not None:
        table = table.slice(0, limit)
    return table.to_pydict()


def preprocess_images(pngs: list[bytes], ckpt: Path, workers: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    if workers <= 1:
        _init_worker(str(ckpt))
        results = [_pixels(p) for p in tqdm(pngs, desc="images", mininterval=5)]
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(str(ckpt),)) as pool:
            results = list(tqdm(pool.map(_pixels, pngs, chunksize=16), total=len(pngs), desc="images", mininterval=5))
    return [r[0] for r in results], [r[1] for r in results]


def prompt_ids(processor: Any, query: str, n_image_tokens: int) -> list[int]:
    """Seg-Zero's chat prompt (system + image + user text + assistant header) as token ids, the
    image placeholder expanded to `n_image_tokens` pads as the processor does."""
    from segzero_edge.prompts import chat_messages

    text = processor.apply_chat_template(chat_messages(query), tokenize=False, add_generation_prompt=True)
    text = text.replace("<|image_pad|>", "<|image_pad|>" * n_image_tokens, 1)
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def build_examples(processor: Any, rows: dict[str, list], grids: list[np.ndarray]) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per row: prompt + completion + <|im_end|>."""
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    merge = processor.image_processor.merge_size
    out = []
    for query, completion, grid in zip(rows["text"], rows["completion"], grids, strict=True):
        prompt = prompt_ids(processor, query, int(np.prod(grid)) // merge**2)
        answer = tok(completion, add_special_tokens=False)["input_ids"] + [eos]
        out.append((prompt + answer, len(prompt)))
    return out


def collate(indices, examples, image_of, pixels, grids, pad_id: int, image_pad_id: int, device: str) -> dict[str, Any]:
    """A right-padded batch; `pixels` [U, P, 1176] (on `device`) holds each unique image once."""
    import torch

    longest = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, i in enumerate(indices):
        seq, n_prompt = examples[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
        mask[row, : len(seq)] = 1
    images = torch.tensor([image_of[i] for i in indices], device=pixels.device)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels,
             "image_grid_thw": torch.from_numpy(np.stack([grids[image_of[i]] for i in indices])).long(),
             "mm_token_type_ids": (ids == image_pad_id).int()}
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["pixel_values"] = pixels[images].flatten(0, 1).float()
    return batch


# --- evaluation -----------------------------------------------------------------------------


def greedy_eval(model, processor, data: Path, n: int, workers: int, ckpt: Path, device: str,
                max_new_tokens: int = 256, batch: int = 32) -> dict[str, Any]:
    """Greedy-decode the first `n` val rows (batched HF generate) and average Seg-Zero's rewards."""
    import torch

    from segzero_edge.rewards import SEG_ZERO_COMPONENTS, get_reward

    rows = read_rows(data / "val.parquet", ["image", "text", "gt_bbox", "gt_points"], n)
    pixels, grids = preprocess_images([r["bytes"] for r in rows["image"]], ckpt, workers)
    tok = processor.tokenizer
    pad, image_pad = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    texts: list[str] = []
    model.eval()
    for start in range(0, len(rows["text"]), batch):
        idx = list(range(start, min(start + batch, len(rows["text"]))))
        prompts = [prompt_ids(processor, rows["text"][i], int(np.prod(grids[i])) // merge**2) for i in idx]
        longest = max(map(len, prompts))
        ids = torch.full((len(idx), longest), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for r, p in enumerate(prompts):  # left padding for generation
            ids[r, longest - len(p):] = torch.tensor(p)
            attn[r, longest - len(p):] = 1
        inputs = {"input_ids": ids, "attention_mask": attn, "mm_token_type_ids": (ids == image_pad).int(),
                  "pixel_values": torch.from_numpy(np.concatenate([pixels[i] for i in idx])).float(),
                  "image_grid_thw": torch.from_numpy(np.stack([grids[i] for i in idx])).long()}
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, top_k=None,
                                 top_p=None, temperature=None, pad_token_id=pad)
        texts += tok.batch_decode(out[:, longest:], skip_special_tokens=True)
    model.train()
    scores = {name: float(np.mean([get_reward(name)(t, b, p) for t, b, p in
                                   zip(texts, rows["gt_bbox"], rows["gt_points"], strict=True)]))
              for name in SEG_ZERO_COMPONENTS}
    scores["seg_zero"] = float(sum(scores.values()))
    # the continuous figures behind the thresholded rewards: parse rate and mean box IoU
    from segzero_edge.answer import AnswerError, parse_answer
    from segzero_edge.geometry import box_iou

    ious = []
    for text, gt in zip(texts, rows["gt_bbox"], strict=True):
        try:
            ious.append(box_iou(parse_answer(text).bbox, tuple(int(v) for v in gt)))
        except AnswerError:
            ious.append(None)
    parsed = [v for v in ious if v is not None]
    return {"val_rows": len(texts), "val_rewards": scores, "parsed": len(parsed) / len(texts),
            "mean_box_iou": float(np.mean([v or 0.0 for v in ious])), "examples": texts[:3]}


# --- training -------------------------------------------------------------------------------


def load_rows(features: Path, families: str) -> list[dict[str, Any]]:
    keep = {f for f in families.split(",") if f}
    rows = [json.loads(line) for line in (Path(features) / "rows.jsonl").open(encoding="utf-8")]
    return [r for r in rows if not keep or r["family"] in keep]


def tokenize_rows(processor: Any, rows: list[dict[str, Any]], n_image_tokens: int) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per row: Seg-Zero's chat prompt + completion + <|im_end|>."""
    tok = processor.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    prompts = {q: prompt_ids(processor, q, n_image_tokens) for q in {r["text"] for r in rows}}
    answers = tok([r["completion"] for r in rows], add_special_tokens=False)["input_ids"]
    return [(prompts[r["text"]] + a + [eos], len(prompts[r["text"]])) for r, a in zip(rows, answers, strict=True)]


def feature_batch(indices, examples, scenes, feats, pad_id: int, image_pad_id: int, grid, device: str):
    """A right-padded batch with the cached features of each row's scene as the image encoding."""
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    longest = max(len(examples[i][0]) for i in indices)
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, i in enumerate(indices):
        seq, n_prompt = examples[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
        mask[row, : len(seq)] = 1
    image = torch.from_numpy(np.concatenate([feats[scenes[i]] for i in indices]).astype(np.float32))
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels,
             "image_grid_thw": torch.tensor([grid] * len(indices), dtype=torch.long),
             "mm_token_type_ids": (ids == image_pad_id).int()}
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=(image.to(device),))}
    return batch


def train(cfg: SftConfig) -> dict[str, Any]:
    import torch
    from common import Resumable, cpu_bf16
    from tqdm.auto import tqdm
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.models.processor import load_processor

    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    bf16 = cpu_bf16(device, cfg.bf16)
    processor = load_processor(cfg.init)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.init, dtype=torch.float32).to(device).train()
    model.model.visual.requires_grad_(False)  # frozen: its features are cached
    n_params = sum(p.numel() for p in model.parameters())
    feats = np.load(Path(cfg.features) / "features.f16", mmap_mode="r")
    n_tokens = feats.shape[1]
    side = round(n_tokens**0.5) * 2  # patches per side
    rows = load_rows(cfg.features, cfg.families)
    if not rows:
        raise ValueError(f"no rows in {cfg.features}/rows.jsonl for families {cfg.families!r}")
    examples = tokenize_rows(processor, rows, n_tokens)
    scenes = [r["scene"] for r in rows]
    lengths = [len(e[0]) for e in examples]
    print(f"reasoner: {n_params / 1e6:.2f} M parameters, bf16={bf16}, on {hardware(device)}; {len(examples)} rows on "
          f"{len(set(scenes))} scenes, tokens per row: mean {np.mean(lengths):.0f}, max {max(lengths)}", flush=True)
    tok = processor.tokenizer
    pad, image_pad = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|image_pad|>")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(cfg.seed)
    state = Resumable(Path(cfg.out) / "state.pt", cfg.save_minutes * 60)
    step, log = state.restore(model, opt, rng)
    bar = tqdm(desc="sft", unit="step", mininterval=10, initial=step, total=cfg.steps)
    while step < cfg.steps:
        lr = warmup_cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, floor=cfg.min_lr)
        set_lr(opt, lr)
        indices = rng.choice(len(examples), size=cfg.batch, replace=False)
        batch = feature_batch(indices, examples, scenes, feats, pad, image_pad, (1, side, side), device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        step += 1
        bar.update()
        if step % cfg.log_every == 0 or step == 1:
            rec = {"step": step, "lr": round(lr, 6), "loss": round(loss.item(), 4),
                   "epoch": round(step * cfg.batch / len(examples), 3)}
            log.append(rec)
            print(json.dumps(rec), flush=True)
        if step < cfg.steps:
            state.maybe_save(step, model, opt, rng, log)
    bar.close()
    state.save(step, model, opt, rng, log)
    return {"model": model, "processor": processor, "steps": step, "log": log, "params": n_params,
            "device": device, "rows": len(examples), "bf16": bf16}


def main(argv: list[str] | None = None) -> int:
    from segzero_edge.dataclass_args import add_dataclass_args, dataclass_from_args

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataclass_args(parser, SftConfig)
    cfg = dataclass_from_args(SftConfig, parser.parse_args(argv))
    out = Path(cfg.out)
    if (out / "report.json").is_file():
        print(f"{out}/report.json exists: stage done", flush=True)
        return 0
    timing = out.parent / "times.jsonl"
    with timed(f"sft_reasoner:{out.name}", timing) as rec:
        result = train(cfg)
        rec.update(steps=result["steps"], where=hardware(result["device"]))
    model = result["model"]
    model.save_pretrained(out / "model")
    copy_processor_files(cfg.init, out / "model")
    report = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
              "steps": result["steps"], "rows": result["rows"], "params": result["params"], "bf16": result["bf16"],
              "where": hardware(result["device"]), "log": result["log"]}
    if cfg.eval_rows:
        with timed(f"sft_greedy_eval:{out.name}", timing) as rec:
            report["eval"] = greedy_eval(model, result["processor"], Path(cfg.data), cfg.eval_rows, cfg.workers,
                                         out / "model", result["device"], max_new_tokens=512)
            rec.update(report["eval"]["val_rewards"])
        print(json.dumps(report["eval"], indent=1), flush=True)
    write_json(out / "report.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
