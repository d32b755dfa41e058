"""Export a Qwen2.5-VL reasoner into `out_dir/{vision,embed,decoder}.onnx` + `tokenizer.json`,
and return the manifest's `reasoner` component: everything the runtime needs, nothing guessed.

    meta = export_reasoner("Ricky06662/Seg-Zero-7B", "engines/reasoner", precision="int4")

Precisions (per graph, recorded in `meta["precision"]`): the text graphs take the requested
precision; the vision tower supports fp32/fp16/int8, so an int4 export writes an int8 vision
graph (weight-only int4 exists only for the text graphs).
"""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from segzero_edge.export.onnx_io import onnx_bytes
from segzero_edge.export.precision import check_block_size, convert
from segzero_edge.export.reasoner_text import PRECISION_POLICY as TEXT_POLICY
from segzero_edge.graphs.reasoner_prompt import PARSERS, SEGZERO_QUESTION_RULE, USER_SENTINEL, user_template
from segzero_edge.graphs.reasoner_text_io import KV_LAYOUTS
from segzero_edge.prompts import REASONER_SIZE, SYSTEM_PROMPT, chat_messages

PRECISIONS = TEXT_POLICY.precisions

FILES = {
    "vision": "vision.onnx",
    "embed": "embed.onnx",
    "decoder": "decoder.onnx",
    "tokenizer": "tokenizer.json",
}
#: The vision graph's precision for each requested reasoner precision.
VISION_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int4": "int8"}
_SPECIAL = {
    "image_pad": "<|image_pad|>",
    "video_pad": "<|video_pad|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
    "im_start": "<|im_start|>",
    "im_end": "<|im_end|>",
    "endoftext": "<|endoftext|>",
}


def prompt_metadata(processor: Any, answer_format: str = "single") -> dict[str, Any]:
    """Seg-Zero's chat prompt as prefix + user text + suffix, rendered by the processor's own
    chat template (so the runtime needs no Jinja), the user template of `answer_format`, and
    that format with its parser (the runtime follows them)."""
    template = user_template(answer_format)  # an unknown format fails before any rendering
    messages = chat_messages("x")
    messages[-1]["content"][-1]["text"] = USER_SENTINEL
    rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if rendered.count(USER_SENTINEL) != 1:
        raise ValueError(
            "the chat template did not render the user text exactly once; cannot split the prompt"
        )
    prefix, suffix = rendered.split(USER_SENTINEL)
    return {
        "prefix": prefix,
        "suffix": suffix,
        "user_template": template,
        "question_normalization": SEGZERO_QUESTION_RULE,
        "system": SYSTEM_PROMPT,
        "answer_format": answer_format,
        "parser": PARSERS[answer_format],
    }


def special_tokens(processor: Any, eos_ids: list[int], pad_id: int) -> dict[str, Any]:
    tok = processor.tokenizer
    ids: dict[str, Any] = {}
    for name, token in _SPECIAL.items():
        i = tok.convert_tokens_to_ids(token)
        if i is None or i == tok.unk_token_id:
            raise ValueError(f"the tokenizer has no {token}: not a Qwen2-VL family tokenizer")
        ids[name] = int(i)
    ids["eos"] = [int(e) for e in eos_ids]
    ids["pad"] = int(pad_id)
    return ids


def model_dims(model: Any) -> dict[str, Any]:
    text = model.config.get_text_config()
    vision = model.config.vision_config
    rope = dict(getattr(text, "rope_parameters", None) or getattr(text, "rope_scaling", None) or {})
    theta = rope.get("rope_theta", getattr(text, "rope_theta", None))
    return {
        "model_type": model.config.model_type,
        "num_layers": int(text.num_hidden_layers),
        "num_heads": int(text.num_attention_heads),
        "kv_heads": int(text.num_key_value_heads),
        "head_dim": int(text.hidden_size // text.num_attention_heads),
        "hidden": int(text.hidden_size),
        "vocab": int(text.vocab_size),
        "mrope_section": [int(v) for v in rope.get("mrope_section", [])],
        "rope_theta": float(theta) if theta is not None else None,
        "spatial_merge_size": int(vision.spatial_merge_size),
        "tokens_per_second": getattr(vision, "tokens_per_second", None),
    }


def preprocess_metadata(processor: Any) -> dict[str, Any]:
    from segzero_edge.graphs.qwen_preprocess import QwenImageConfig

    ip = processor.image_processor
    cfg = QwenImageConfig.from_dict(ip.to_dict())
    return {"resize": REASONER_SIZE, "resize_resample": "bilinear", **cfg.to_dict()}


def _load(model_or_dir: Any, processor: Any) -> tuple[Any, Any, list[int], int, float, str]:
    """(hf model, processor, eos ids, pad id, repetition penalty, source) from a path, hub id,
    TorchReasoner, or a bare model + processor."""
    from segzero_edge.models.reasoner import TorchReasoner

    if isinstance(model_or_dir, (str, os.PathLike)):
        reasoner = TorchReasoner.from_pretrained(model_or_dir, dtype="float32")
    elif isinstance(model_or_dir, TorchReasoner):
        reasoner = model_or_dir
    else:
        if processor is None:
            raise ValueError(
                "exporting a bare model needs processor= (load it with models.processor.load_processor)"
            )
        reasoner = TorchReasoner(model_or_dir, processor)
    model = reasoner.hf_model
    if hasattr(model, "peft_config"):
        raise ValueError(
            "merge the LoRA adapter before export (TorchReasoner.from_pretrained(..., merge_adapter=True))"
        )
    return (
        model,
        processor or reasoner.processor,
        reasoner.eos_ids,
        reasoner.pad_id,
        reasoner.default_repetition_penalty,
        reasoner.source,
    )


def export_reasoner(
    model_or_dir: Any,
    out_dir: str | Path,
    precision: str = "fp32",
    block_size: int = 32,
    progress: bool = True,
    *,
    accuracy_level: int = 4,
    processor: Any = None,
    answer_format: str = "single",
    decoder_layout: str = "fused",
) -> dict[str, Any]:
    """Write vision.onnx, embed.onnx, decoder.onnx and tokenizer.json into `out_dir`; return the
    manifest component (precisions, file sizes, preprocessing, prompt, special ids, dims).
    `answer_format` picks the prompt the engines render and the answers the runtime parses;
    decoder_layout: "fused" or "portable" (`graphs.reasoner_text_io.KV_LAYOUTS`)."""
    import torch
    from tqdm.auto import tqdm

    from segzero_edge.export.reasoner_text import export_decoder, export_embed
    from segzero_edge.export.reasoner_vision import export_vision

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} not in {PRECISIONS}")
    if decoder_layout not in KV_LAYOUTS:
        raise ValueError(f"decoder_layout {decoder_layout!r} not in {KV_LAYOUTS}")
    check_block_size(block_size)
    user_template(answer_format)  # an unknown format fails before the (slow) export
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, eos_ids, pad_id, rep_penalty, source = _load(model_or_dir, processor)
    if next(model.parameters()).dtype != torch.float32 or next(model.parameters()).device.type != "cpu":
        raise ValueError(
            f"export from float32 weights on the CPU (got {next(model.parameters()).dtype} on "
            f"{next(model.parameters()).device}): load with TorchReasoner.from_pretrained(..., dtype='float32') and "
            "pick the precision here; fp16/int8/int4 are conversions of the float32 graphs"
        )
    model = model.eval()
    steps = tqdm(total=4, desc=f"export reasoner ({precision})", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="reasoner-fp32-", dir=out) as tmp:
        steps.set_postfix_str("vision")
        export_vision(model, out / FILES["vision"], precision=VISION_PRECISION[precision])
        steps.update()
        decoder = partial(export_decoder, layout=decoder_layout)
        for name, export in (("embed", export_embed), ("decoder", decoder)):
            steps.set_postfix_str(name)
            if precision == "fp32":
                export(model, out / FILES[name])
            else:
                fp32 = export(model, Path(tmp) / FILES[name])
                convert(
                    fp32, out / FILES[name], precision, TEXT_POLICY, block_size=block_size,
                    accuracy_level=accuracy_level,
                )
            steps.update()
    steps.set_postfix_str("tokenizer")
    processor.tokenizer.backend_tokenizer.save(str(out / FILES["tokenizer"]))
    steps.update()
    steps.close()
    graph_precision = {"vision": VISION_PRECISION[precision], "embed": precision, "decoder": precision}
    meta: dict[str, Any] = {
        "architecture": "qwen2_5_vl" if model.config.model_type == "qwen2_5_vl" else model.config.model_type,
        "source": source,
        "files": dict(FILES),
        "precision": graph_precision,
        "quantization": {"int4_block_size": block_size, "int4_accuracy_level": accuracy_level}
        if precision == "int4"
        else {},
        "bytes": {name: onnx_bytes(out / f) for name, f in FILES.items() if f.endswith(".onnx")},
        "preprocess": preprocess_metadata(processor),
        "prompt": prompt_metadata(processor, answer_format),
        "special_tokens": special_tokens(processor, eos_ids, pad_id),
        "dims": model_dims(model),
        "generation": {
            "max_new_tokens": 1024,
            "temperature": 0.0,
            "top_p": 1.0,
            "repetition_penalty": rep_penalty,
        },
        "io": {
            "embeddings_scatter": "runtime: rows where input_ids == image_pad <- vision features",
            "logits": "last position only",
            "kv_layout": decoder_layout,
        },
    }
    return meta
