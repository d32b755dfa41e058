"""The embedded default reasoner's architecture and its freshly initialised checkpoint directory.

A small Qwen2.5-VL (same structure as the 3B/7B: windowed + full-attention vision blocks,
2x2 patch merger, M-RoPE, GQA) with the project tokenizer. The processor's `max_pixels`
makes Qwen's own smart-resize shrink the 840x840 Seg-Zero input to `image_side`² (224 -> 16x16
patches -> 64 image tokens); the prompt, the 840 resize and the 840-space answers are
unchanged, and the runtime reads min/max pixels from the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Side of the image the vision tower sees (multiple of 28): 224 -> 16x16 patches -> 8x8 = 64 image tokens.
IMAGE_SIDE = 224

REASONER_OVERRIDES: dict[str, Any] = {
    "text_config": {
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        # head_dim 64 -> 32 rotary frequencies split (t, h, w) as the 7B's [16, 24, 24] for 128
        "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
    },
    "vision_config": {
        "depth": 4,
        "hidden_size": 192,
        "intermediate_size": 768,
        "num_heads": 3,
        "out_hidden_size": 256,
        "fullatt_block_indexes": [1, 3],
    },
}


def reasoner_config(**extra: Any):
    """`Qwen2_5_VLConfig` of the embedded reasoner (token ids from the project tokenizer)."""
    from segzero_edge.testing import tiny_reasoner_config

    return tiny_reasoner_config(**{**REASONER_OVERRIDES, **extra})


def write_init_checkpoint(out_dir: Path, seed: int, image_side: int = IMAGE_SIDE) -> Path:
    """Save a freshly initialised reasoner (transformers' default init, seeded) with the
    project tokenizer, chat template and a Qwen preprocessor config whose max_pixels is
    `image_side`². Returns `out_dir`."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from segzero_edge.testing import build_tokenizer, write_tokenizer
    from segzero_edge.testing.tiny import IMAGE_MEAN, IMAGE_STD
    from segzero_edge.testing.tokenizer import EOS_TOKEN, PAD_TOKEN, special_token_ids

    if image_side % 28:
        raise ValueError(f"image_side must be a multiple of 28 (patch 14 x merge 2), got {image_side}")
    out_dir = Path(out_dir)
    config = reasoner_config()
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    ids = special_token_ids(build_tokenizer())
    model.generation_config = GenerationConfig(
        bos_token_id=ids[PAD_TOKEN], eos_token_id=[ids[EOS_TOKEN], ids[PAD_TOKEN]],
        pad_token_id=ids[PAD_TOKEN], do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    write_tokenizer(out_dir)
    pre = {
        "min_pixels": 56 * 56,
        "max_pixels": image_side * image_side,
        "patch_size": config.vision_config.patch_size,
        "temporal_patch_size": config.vision_config.temporal_patch_size,
        "merge_size": config.vision_config.spatial_merge_size,
        "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }
    (out_dir / "preprocessor_config.json").write_text(json.dumps(pre, indent=2, sort_keys=True) + "\n")
    return out_dir


def copy_processor_files(src: Path, dst: Path) -> None:
    """Tokenizer, chat template and preprocessor files from one checkpoint dir to another."""
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                 "preprocessor_config.json"):
        if (Path(src) / name).is_file():
            shutil.copy(Path(src) / name, Path(dst) / name)
