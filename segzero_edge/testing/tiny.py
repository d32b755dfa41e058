"""Tiny random-weight Qwen2.5-VL reasoner and SAM2 segmenter, saved in Hugging Face format.

They keep every structural constant that code downstream depends on (patch 14, merge 2,
temporal patch 2, window 112 with windowed and full-attention vision blocks, M-RoPE, GQA,
SAM2's 1024 input, FPN levels and 3-mask decoder) and shrink only the widths and depths, so
an 840×840 image runs in well under a second on CPU.

Default initialisation leaves biases at zero and std 0.02 weights, which makes a tiny model
emit one token forever and SAM2 emit flat masks. `_reinit` redraws every tensor from a
generator seeded by (seed, tensor name), so outputs vary with the input and are reproducible.

CLI: `python -m segzero_edge.testing.tiny OUT [--seed N]` writes OUT/reasoner and OUT/segmenter.
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segzero_edge.testing import TinyModels
from segzero_edge.testing.tokenizer import (
    EOS_TOKEN,
    PAD_TOKEN,
    build_tokenizer,
    special_token_ids,
    write_tokenizer,
)

if TYPE_CHECKING:
    import torch
    from transformers import Qwen2_5_VLConfig, Sam2Config

VOCAB_MULTIPLE = 64  # Qwen pads its embedding matrix past the tokenizer (152064 > 151665); so do we.
LOGIT_SCALE = 2.0  # on top of the generic init: text logits get std ~3
QUERY_SCALE = 2.0
OBJECT_SCORE_BIAS = 3.0
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]  # OpenAI CLIP, as in Qwen2.5-VL's preprocessor
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Shallow-merge overrides; nested `*_config` dicts are merged one level deeper."""
    out = dict(defaults)
    for key, value in overrides.items():
        if key.endswith("_config") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def tiny_reasoner_config(**overrides: Any) -> Qwen2_5_VLConfig:
    """A tiny `Qwen2_5_VLConfig` whose token ids match `build_tokenizer()`.

    Overrides are top-level config fields (e.g. `tie_word_embeddings=True`, as in the 3B) or
    partial `text_config={...}` / `vision_config={...}` dicts merged into the defaults.
    """
    from transformers import Qwen2_5_VLConfig

    ids = special_token_ids(build_tokenizer())
    n_tokens = max(ids.values()) + 1
    vocab_size = math.ceil(n_tokens / VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    text = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,  # GQA, as in the real models
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        # head_dim 16 -> 8 rotary frequencies split (t, h, w), proportional to 7B's [16, 24, 24].
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "rope_theta": 1e6,
        "bos_token_id": ids[PAD_TOKEN],
        "eos_token_id": ids[EOS_TOKEN],
        "pad_token_id": ids[PAD_TOKEN],
    }
    vision = {
        "depth": 4,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 64,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1, 3],  # blocks 0, 2 windowed; 1, 3 full (7B: [7, 15, 23, 31])
    }
    defaults: dict[str, Any] = {
        "text_config": text,
        "vision_config": vision,
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": False,  # 7B unties lm_head; the 3B ties it (override to test that)
    }
    cfg = _merge(defaults, overrides)
    if cfg["vision_config"]["out_hidden_size"] != cfg["text_config"]["hidden_size"]:
        raise ValueError(
            f"vision out_hidden_size {cfg['vision_config']['out_hidden_size']} must equal text hidden_size "
            f"{cfg['text_config']['hidden_size']}: the merger output is spliced into the text embeddings"
        )
    return Qwen2_5_VLConfig(**cfg)


def tiny_segmenter_config(image_size: int = 1024, **overrides: Any) -> Sam2Config:
    """A tiny `Sam2Config` with sam2.1-hiera-tiny's structure (4 Hiera stages, 3 FPN levels at
    256/128/64 for a 1024 input, two-way transformer decoder with 3+1 masks) and narrow widths.

    `image_size` sets the encoder's square input (every size-dependent field follows it).
    Overrides: `vision_config`, `backbone_config`, `prompt_encoder_config`, `mask_decoder_config`
    dicts (merged into the defaults) or top-level fields. Keep `hidden` equal across FPN,
    prompt encoder and mask decoder.
    """
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    hidden = 32
    backbone = {
        "hidden_size": 16,
        "num_attention_heads": 1,
        "embed_dim_per_stage": [16, 32, 64, 128],
        "num_attention_heads_per_stage": [1, 1, 2, 4],
        "blocks_per_stage": [1, 1, 2, 1],
        "window_size_per_stage": [8, 4, 14, 7],
        "global_attention_blocks": [3],  # one global block in stage 3, like hiera-tiny's [5, 7, 9]
        "image_size": [image_size, image_size],
    }
    vision = {
        "backbone_channel_list": [128, 64, 32, 16],
        "backbone_feature_sizes": [[image_size // s] * 2 for s in (4, 8, 16)],
        "fpn_hidden_size": hidden,
        "num_feature_levels": 3,
    }
    defaults: dict[str, Any] = {
        "backbone_config": backbone,
        "vision_config": vision,
        "prompt_encoder_config": {"hidden_size": hidden, "image_size": image_size, "patch_size": 16},
        "mask_decoder_config": {
            "hidden_size": hidden,
            "mlp_dim": 64,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": hidden,
        },
    }
    cfg = _merge(defaults, overrides)
    backbone_cfg = Sam2HieraDetConfig(**cfg.pop("backbone_config"))
    cfg["vision_config"] = Sam2VisionConfig(backbone_config=backbone_cfg, **cfg["vision_config"])
    return Sam2Config(**cfg)


def _generator(seed: int, name: str) -> torch.Generator:
    import torch

    # Per-tensor seeds: a tensor's values depend only on (seed, name, shape), not on module order.
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def _reinit(model: torch.nn.Module, seed: int, *, gain: float, embed_std: float) -> None:
    """Redraw every parameter and persistent buffer with a seeded generator.

    Linear/conv weights ~ N(0, gain/sqrt(fan_in)); biases ~ N(0, 0.1); norm weights ~ 1 + N(0, 0.1);
    embeddings and free parameters (positional tables, learned tokens) ~ N(0, embed_std).
    """
    import torch
    from torch import nn

    saved = set(model.state_dict())  # persistent tensors only: derived tables are recomputed
    with torch.no_grad():
        for mod_name, module in model.named_modules():
            is_norm = "norm" in type(module).__name__.lower()
            is_dense = isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d))
            for p_name, param in module.named_parameters(recurse=False):
                name = f"{mod_name}.{p_name}" if mod_name else p_name
                g = _generator(seed, name)
                noise = torch.randn(param.shape, generator=g, dtype=torch.float32)
                if p_name == "bias":
                    value = 0.1 * noise
                elif is_norm:
                    value = 1.0 + 0.1 * noise
                elif is_dense:
                    fan_in = param[0].numel()
                    if isinstance(module, nn.ConvTranspose2d):
                        # (in, out, kh, kw) with stride == kernel: each output sees `in` inputs.
                        fan_in = param.shape[0]
                    value = noise * (gain / math.sqrt(fan_in))
                else:
                    value = noise * embed_std
                param.copy_(value.to(param.dtype))
            for b_name, buf in module.named_buffers(recurse=False):
                name = f"{mod_name}.{b_name}" if mod_name else b_name
                if name not in saved or not buf.is_floating_point():
                    continue  # e.g. rotary inv_freq: derived from the config, never loaded
                buf.copy_(torch.randn(buf.shape, generator=_generator(seed, name)).to(buf.dtype))


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_tiny_reasoner(out_dir: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Build, re-initialise and save a tiny Qwen2.5-VL reasoner with tokenizer and processor files.

    Writes config.json, generation_config.json, model.safetensors, the tokenizer files
    (`write_tokenizer`) and a Qwen-format preprocessor_config.json. Returns `out_dir`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    out_dir = Path(out_dir)
    config = tiny_reasoner_config(**config_overrides)
    with torch.random.fork_rng(devices=[]):  # constructor draws are discarded; leave the caller's RNG alone
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    _reinit(model, seed, gain=1.6, embed_std=1.0)

    ids = special_token_ids(build_tokenizer())
    n_tokens = max(ids.values()) + 1
    with torch.no_grad():
        lm_head = model.get_output_embeddings().weight
        # Logit std ~3: top-1/top-2 margins are then ~0.5 typically and rarely below 1e-3, so
        # 1e-5-level numerical noise (ONNX vs torch) essentially never flips a greedy token.
        lm_head.mul_(LOGIT_SCALE)
        # Sharper text attention (like a trained model's) keeps greedy decoding out of
        # single-token attractors that a bag-of-context random model falls into.
        for layer in model.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(QUERY_SCALE)
        # A zero row gives logit 0, which never beats the max of ~1.6k logits of std 3. Use it
        # for the alignment rows past the tokenizer and, like a trained Qwen, for the control
        # tokens a reply never contains (vision/box pads, <|im_start|>). Tied weights would zero
        # those input embeddings too, so then only the alignment rows are cleared.
        lm_head[n_tokens:] = 0.0
        if not config.tie_word_embeddings:
            never = [i for t, i in ids.items() if t not in (EOS_TOKEN, PAD_TOKEN)]
            lm_head[never] = 0.0
            model.get_input_embeddings().weight[n_tokens:] = 0.0

    model.generation_config = GenerationConfig(
        bos_token_id=ids[PAD_TOKEN],
        eos_token_id=[ids[EOS_TOKEN], ids[PAD_TOKEN]],
        pad_token_id=ids[PAD_TOKEN],
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # transformers 5.x always writes safetensors
    write_tokenizer(out_dir)
    preprocessor = {
        # Qwen2.5-VL-Instruct's preprocessor_config.json: an 840x840 image (840 = 30 * 28) is
        # inside [min_pixels, max_pixels], so it is not resized: 60x60 patches, 900 tokens.
        "min_pixels": 56 * 56,
        "max_pixels": 28 * 28 * 16384,
        "patch_size": config.vision_config.patch_size,
        "temporal_patch_size": config.vision_config.temporal_patch_size,
        "merge_size": config.vision_config.spatial_merge_size,
        "image_mean": IMAGE_MEAN,
        "image_std": IMAGE_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }
    _write_json(out_dir / "preprocessor_config.json", preprocessor)
    return out_dir


def build_tiny_segmenter(out_dir: Path, seed: int = 0, **config_overrides: Any) -> Path:
    """Build, re-initialise and save a tiny transformers `Sam2Model` (safetensors). Returns `out_dir`."""
    import torch
    from transformers import Sam2Model

    out_dir = Path(out_dir)
    with torch.random.fork_rng(devices=[]):
        model = Sam2Model(tiny_segmenter_config(**config_overrides)).eval()
    _reinit(model, seed, gain=1.6, embed_std=0.5)
    with torch.no_grad():
        # Real SAM2 has one random-Fourier matrix for image and prompt positions; HF keeps two copies.
        gaussian = torch.randn(
            model.shared_image_embedding.positional_embedding.shape, generator=_generator(seed, "pe_layer")
        )
        model.shared_image_embedding.positional_embedding.copy_(gaussian)
        model.prompt_encoder.shared_embedding.positional_embedding.copy_(gaussian)
        # A prompted object is usually "present" for a trained SAM2 (object score logit > 0).
        model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(OBJECT_SCORE_BIAS)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    return out_dir


def write_tiny_models(out: Path, seed: int = 0) -> TinyModels:
    """Write `out/reasoner` and `out/segmenter`; returns their paths."""
    out = Path(out)
    return TinyModels(
        reasoner=build_tiny_reasoner(out / "reasoner", seed=seed),
        segmenter=build_tiny_segmenter(out / "segmenter", seed=seed),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m segzero_edge.testing.tiny",
        description="Write tiny random-weight Qwen2.5-VL (OUT/reasoner) and SAM2 (OUT/segmenter) checkpoints.",
    )
    parser.add_argument("out", type=Path, help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = parser.parse_args(argv)
    models = write_tiny_models(args.out, seed=args.seed)
    print(f"reasoner: {models.reasoner}\nsegmenter: {models.segmenter}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
