"""A tiny reasoner whose answers parse: the random tiny model overfitted to one completion.

Random tiny weights never write a parseable answer, so a pipeline test on them exercises the
failure path only (every sample I=0, both back ends agree on 0.0). `overfit_reasoner` trains
the tiny Qwen2.5-VL for a few dozen steps (language model only; the vision features are
computed once) until greedy decoding writes `COMPLETION` for the given images and queries, and
saves it as a Hugging Face directory that `segzero-edge export` and `TorchReasoner` both load.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: A valid Seg-Zero answer: think + answer tags, bbox and two points inside it (840 space). The
#: box covers the whole image, so the segmenter is prompted wherever the target is.
COMPLETION = (
    "<think>the whole scene</think>"
    '<answer>{"bbox": [0,0,839,839], "points_1": [420,420], "points_2": [300,500]}</answer>'
)
#: A valid multi-object (VisionReasoner) answer: one object whose box covers the whole image.
COMPLETION_MULTI = '<think>the whole scene</think><answer>[{"bbox_2d": [0,0,839,839], "point_2d": [420,420]}]</answer>'


def overfit_reasoner(
    src: Path,
    out: Path,
    examples: Sequence[tuple[np.ndarray, str]],
    *,
    completion: str = COMPLETION,
    steps: int = 60,
    lr: float = 3e-3,
    seed: int = 0,
    answer_format: str = "single",
) -> Path:
    """Train the reasoner at `src` to answer each (image, query), prompted in `answer_format`,
    with `completion` (then its end-of-turn token); write the result to `out` and return it."""
    import torch

    from segzero_edge.models.reasoner import TorchReasoner

    torch.manual_seed(seed)
    reasoner = TorchReasoner.from_pretrained(src, answer_format=answer_format)
    model, tokenizer = reasoner.model, reasoner.processor.tokenizer
    target = tokenizer(completion, add_special_tokens=False)["input_ids"]
    target.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))  # ends the turn: generation stops
    target_ids = torch.tensor([target])
    batches = []
    for image, query in examples:
        encoded = reasoner.encode_image(image)
        inputs = reasoner.prompt_inputs(encoded, query)
        inputs.pop("pixel_values")
        prompt_len = inputs["input_ids"].shape[1]
        batch = {k: v for k, v in inputs.items() if k != "input_ids"}
        batch["input_ids"] = torch.cat([inputs["input_ids"], target_ids], dim=1)
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in batch:  # the completion is text
                batch[key] = torch.cat([batch[key], torch.zeros_like(target_ids)], dim=1)
        batch["labels"] = torch.full_like(batch["input_ids"], -100)
        batch["labels"][0, prompt_len:] = target_ids[0]
        batch["mm_encoder_outputs"] = {"image": encoded.vision}  # the frozen tower runs once
        batches.append(batch)
    for param in model.model.visual.parameters():
        param.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = sum(model(**batch).loss for batch in batches) / len(batches)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    shutil.copytree(src, out)  # tokenizer and processor files as they were
    model.save_pretrained(out)  # then the trained weights and config over them
    return out
