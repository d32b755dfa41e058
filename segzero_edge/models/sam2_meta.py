"""Meta's SAM2 checkpoints (`sam2.1_hiera_tiny.pt` …) → transformers `Sam2Model`.

Meta's `sam2` repository ships `{"model": state_dict}` torch files in its own key layout
(`image_encoder.trunk.*`, `sam_prompt_encoder.*`, `sam_mask_decoder.*`, plus the video
model's memory modules). This module maps that layout onto `Sam2Model`'s, infers the
`Sam2Config` from the tensor shapes, and loads the result with `strict=True`, without
Meta's package (it needs torchvision and a CUDA build) and without a model hub.

The mapping, explicitly:
- renames only, tensors unchanged: Hiera's `qkv` stays one fused projection on both sides;
  the mask decoder's attentions are split q/k/v on both sides (`out_proj` → `o_proj`);
  Meta's `MLP.layers.{0..n-1}` → `proj_in`, `layers.{0..n-3}`, `proj_out`;
  `nn.Sequential` indices → named layers (`mask_downscaling.{0,1,3,4,6}`,
  `output_upscaling.{0,1,3}`); the neck's `convs.{i}.conv` → `convs.{i}`;
- `pos_embed` (the background table, interpolated to the feature size at run time) and
  `pos_embed_window` (tiled per window) keep their shapes;
- merged: `sam_prompt_encoder.point_embeddings.{0..3}` ([1, C] each) → `point_embed` [4, C];
- copied: the prompt encoder's random-Fourier matrix `pe_layer.positional_encoding_gaussian_matrix`
  feeds both of transformers' copies (`shared_image_embedding`, `prompt_encoder.shared_embedding`);
  `no_mem_embed` (added to the lowest-resolution features of a single image) → `no_memory_embedding`;
- dropped: the video-memory tensors in `VIDEO_ONLY` (the image model never reads them).
Any other key, a missing key or a wrong shape is an error naming the keys.

Loading is safe: `torch.load(..., weights_only=True)` (no arbitrary unpickling) or safetensors.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: File suffixes read as Meta checkpoints (anything else given as a file is refused).
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")

#: Meta tensors the image-only model has no use for (video tracking: memory bank, object
#: pointers, occlusion embeddings), with why. Prefixes end in "."; other entries are exact keys.
VIDEO_ONLY: dict[str, str] = {
    "memory_attention.": "attention of the current frame over the memory bank",
    "memory_encoder.": "encodes past frames' masks into memories",
    "mask_downsample.": "downsamples input masks for the memory encoder",
    "obj_ptr_proj.": "projects object pointers for the memory bank",
    "obj_ptr_tpos_proj.": "temporal encoding of object pointers (sam2.1)",
    "maskmem_tpos_enc": "temporal encoding of memories",
    "no_mem_pos_enc": "positional encoding paired with no_mem_embed in memory attention",
    "no_obj_ptr": "object pointer used when no object is present",
    "no_obj_embed_spatial": "memory embedding of an occluded object (sam2.1)",
}


class MetaCheckpointError(ValueError):
    """A file that is not a readable Meta SAM2 checkpoint; the message is one line."""


@dataclass(frozen=True)
class HieraSize:
    """One released Hiera trunk: what its shapes show (embed dim, blocks per stage, the
    positional tables) and what they cannot (heads, windows, global-attention blocks)."""

    name: str
    embed_dim: int
    blocks_per_stage: tuple[int, ...]
    num_heads: int  # first stage; doubles at every stage change, like the width
    window_size_per_stage: tuple[int, ...]
    global_attention_blocks: tuple[int, ...]
    pos_embed_size: tuple[int, int]  # window_pos_embed_bkg_spatial_size


#: Meta's four trunks (sam2/configs/sam2*/sam2*_hiera_{t,s,b+,l}.yaml and Hiera's defaults);
#: sam2 and sam2.1 share them.
HIERA_SIZES: tuple[HieraSize, ...] = (
    HieraSize("tiny", 96, (1, 2, 7, 2), 1, (8, 4, 14, 7), (5, 7, 9), (7, 7)),
    HieraSize("small", 96, (1, 2, 11, 2), 1, (8, 4, 14, 7), (7, 10, 13), (7, 7)),
    HieraSize("base_plus", 112, (2, 3, 16, 3), 2, (8, 4, 14, 7), (12, 16, 20), (14, 14)),
    HieraSize("large", 144, (2, 6, 36, 4), 2, (8, 4, 16, 8), (23, 33, 43), (7, 7)),
)

#: The mask decoder's attention heads: 8 in every SAM2 (heads leave no trace in the shapes).
DECODER_HEADS = 8

# (Meta pattern, transformers pattern): {i}/{j} match block indices, {p} weight|bias. Each rule
# works both ways: forward to convert, backward to name the Meta key a missing tensor needs.
_TRUNK, _BACKBONE = "image_encoder.trunk.", "vision_encoder.backbone."
_DEC, _HF_DEC = "sam_mask_decoder.", "mask_decoder."
_ATTN = ("self_attn", "cross_attn_token_to_image", "cross_attn_image_to_token")
_RENAMES: tuple[tuple[str, str], ...] = (
    ("no_mem_embed", "no_memory_embedding"),
    (_TRUNK + "pos_embed", _BACKBONE + "pos_embed"),
    (_TRUNK + "pos_embed_window", _BACKBONE + "pos_embed_window"),
    (_TRUNK + "patch_embed.proj.{p}", _BACKBONE + "patch_embed.projection.{p}"),
    (_TRUNK + "blocks.{i}.norm1.{p}", _BACKBONE + "blocks.{i}.layer_norm1.{p}"),
    (_TRUNK + "blocks.{i}.norm2.{p}", _BACKBONE + "blocks.{i}.layer_norm2.{p}"),
    (_TRUNK + "blocks.{i}.attn.qkv.{p}", _BACKBONE + "blocks.{i}.attn.qkv.{p}"),
    (_TRUNK + "blocks.{i}.attn.proj.{p}", _BACKBONE + "blocks.{i}.attn.proj.{p}"),
    (_TRUNK + "blocks.{i}.mlp.layers.0.{p}", _BACKBONE + "blocks.{i}.mlp.proj_in.{p}"),
    (_TRUNK + "blocks.{i}.mlp.layers.1.{p}", _BACKBONE + "blocks.{i}.mlp.proj_out.{p}"),
    (_TRUNK + "blocks.{i}.proj.{p}", _BACKBONE + "blocks.{i}.proj.{p}"),  # stage change: widen the skip
    ("image_encoder.neck.convs.{i}.conv.{p}", "vision_encoder.neck.convs.{i}.{p}"),
    ("sam_prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"),
    ("sam_prompt_encoder.no_mask_embed.weight", "prompt_encoder.no_mask_embed.weight"),
    ("sam_prompt_encoder.mask_downscaling.0.{p}", "prompt_encoder.mask_embed.conv1.{p}"),
    ("sam_prompt_encoder.mask_downscaling.1.{p}", "prompt_encoder.mask_embed.layer_norm1.{p}"),
    ("sam_prompt_encoder.mask_downscaling.3.{p}", "prompt_encoder.mask_embed.conv2.{p}"),
    ("sam_prompt_encoder.mask_downscaling.4.{p}", "prompt_encoder.mask_embed.layer_norm2.{p}"),
    ("sam_prompt_encoder.mask_downscaling.6.{p}", "prompt_encoder.mask_embed.conv3.{p}"),
    *(
        (f"{_DEC}transformer.layers.{{i}}.{a}.{m}_proj.{{p}}", f"{_HF_DEC}transformer.layers.{{i}}.{a}.{h}_proj.{{p}}")
        for a in _ATTN
        for m, h in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o"))
    ),
    *(
        (f"{_DEC}transformer.final_attn_token_to_image.{m}_proj.{{p}}",
         f"{_HF_DEC}transformer.final_attn_token_to_image.{h}_proj.{{p}}")
        for m, h in (("q", "q"), ("k", "k"), ("v", "v"), ("out", "o"))
    ),
    *(
        (f"{_DEC}transformer.layers.{{i}}.norm{n}.{{p}}", f"{_HF_DEC}transformer.layers.{{i}}.layer_norm{n}.{{p}}")
        for n in (1, 2, 3, 4)
    ),
    (_DEC + "transformer.layers.{i}.mlp.layers.0.{p}", _HF_DEC + "transformer.layers.{i}.mlp.proj_in.{p}"),
    (_DEC + "transformer.layers.{i}.mlp.layers.1.{p}", _HF_DEC + "transformer.layers.{i}.mlp.proj_out.{p}"),
    (_DEC + "transformer.norm_final_attn.{p}", _HF_DEC + "transformer.layer_norm_final_attn.{p}"),
    *((f"{_DEC}{t}.weight", f"{_HF_DEC}{t}.weight") for t in ("iou_token", "mask_tokens", "obj_score_token")),
    (_DEC + "output_upscaling.0.{p}", _HF_DEC + "upscale_conv1.{p}"),
    (_DEC + "output_upscaling.1.{p}", _HF_DEC + "upscale_layer_norm.{p}"),
    (_DEC + "output_upscaling.3.{p}", _HF_DEC + "upscale_conv2.{p}"),
    (_DEC + "conv_s0.{p}", _HF_DEC + "conv_s0.{p}"),  # high-res skips: applied inside the encoder graph
    (_DEC + "conv_s1.{p}", _HF_DEC + "conv_s1.{p}"),
    # the three-layer heads: MLP.layers.{0,1,2} → proj_in, layers.0, proj_out
    *(
        (f"{_DEC}{head}.layers.{m}.{{p}}", f"{_HF_DEC}{head}.{h}.{{p}}")
        for head in ("output_hypernetworks_mlps.{j}", "iou_prediction_head", "pred_obj_score_head")
        for m, h in ((0, "proj_in"), (1, "layers.0"), (2, "proj_out"))
    ),
)

_POINT_EMBED = ("sam_prompt_encoder.point_embeddings.{i}.weight", "prompt_encoder.point_embed.weight")
_GAUSSIAN = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_GAUSSIAN_COPIES = ("shared_image_embedding.positional_embedding", "prompt_encoder.shared_embedding.positional_embedding")


def _regex(pattern: str) -> re.Pattern[str]:
    groups = {"{i}": r"(?P<i>\d+)", "{j}": r"(?P<j>\d+)", "{p}": r"(?P<p>weight|bias)"}
    out = re.escape(pattern)
    for field, group in groups.items():
        out = out.replace(re.escape(field), group)
    return re.compile(out + r"\Z")


_FORWARD = tuple((_regex(meta), hf) for meta, hf in _RENAMES)
_BACKWARD = tuple((_regex(hf), meta) for meta, hf in _RENAMES)


def video_only(key: str) -> bool:
    """Whether `key` is a video-memory tensor the image model drops (`VIDEO_ONLY`)."""
    return any(key.startswith(name) if name.endswith(".") else key == name for name in VIDEO_ONLY)


def meta_key_for(hf_key: str) -> str:
    """The Meta key that supplies transformers' `hf_key` (to name what a checkpoint lacks)."""
    if hf_key == _POINT_EMBED[1]:
        return _POINT_EMBED[0].replace("{i}", "N")
    if hf_key in _GAUSSIAN_COPIES:
        return _GAUSSIAN
    for regex, meta in _BACKWARD:
        if match := regex.match(hf_key):
            return meta.format(**match.groupdict())
    return f"(no Meta key maps to {hf_key})"


@dataclass
class MetaConversion:
    """A converted checkpoint: the transformers state dict, its config, the Hiera size found
    and the video-memory keys that were dropped."""

    state_dict: dict[str, torch.Tensor]
    config: Any  # transformers.Sam2Config
    size: HieraSize
    dropped: tuple[str, ...]


def _short(keys: list[str] | set[str], limit: int = 6) -> str:
    keys = sorted(keys)
    more = f" … (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _rename(meta: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """(transformers tensors, dropped video keys, unmapped keys)."""
    out: dict[str, torch.Tensor] = {}
    dropped, unmapped = [], []
    points: dict[int, torch.Tensor] = {}
    point_regex = _regex(_POINT_EMBED[0])
    for key, tensor in meta.items():
        if video_only(key):
            dropped.append(key)
        elif key == _GAUSSIAN:
            for copy in _GAUSSIAN_COPIES:  # one matrix in Meta's model, two copies in transformers'
                out[copy] = tensor
        elif match := point_regex.match(key):
            points[int(match["i"])] = tensor
        else:
            for regex, hf in _FORWARD:
                if match := regex.match(key):
                    out[hf.format(**match.groupdict())] = tensor
                    break
            else:
                unmapped.append(key)
    if points:
        expected = list(range(max(points) + 1))
        if sorted(points) != expected:
            lacking = [_POINT_EMBED[0].format(i=i) for i in expected if i not in points]
            raise MetaCheckpointError(f"missing keys: {_short(lacking)}")
        out[_POINT_EMBED[1]] = torch.cat([points[i] for i in expected], dim=0)  # [1, C] each → [N, C]
    return out, dropped, unmapped


def _shape(meta: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in meta:
        raise MetaCheckpointError(f"missing key: {key}")
    return tuple(meta[key].shape)


def _indices(meta: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """The block indices under `prefix` (`prefix{i}.…`), sorted."""
    regex = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m[1]) for key in meta if (m := regex.match(key))})


def infer_hiera_size(meta: dict[str, torch.Tensor]) -> HieraSize:
    """Which released Hiera trunk `meta` holds, from its shapes: the patch embedding's width,
    the blocks per stage (a stage starts at each block with a `proj`, where the width doubles)
    and the positional tables. Heads, windows and global blocks then come from `HIERA_SIZES`."""
    embed_dim = _shape(meta, _TRUNK + "patch_embed.proj.weight")[0]
    blocks = _indices(meta, _TRUNK + "blocks.")
    if blocks != list(range(len(blocks))) or not blocks:
        raise MetaCheckpointError(f"Hiera blocks must be numbered 0..N-1, found {blocks[:5]}…{blocks[-3:]}")
    starts = [0] + [i for i in blocks if f"{_TRUNK}blocks.{i}.proj.weight" in meta]
    stages = tuple(b - a for a, b in zip(starts, [*starts[1:], len(blocks)], strict=True))
    pos = _shape(meta, _TRUNK + "pos_embed")
    window = _shape(meta, _TRUNK + "pos_embed_window")
    found = f"embed dim {embed_dim}, blocks per stage {list(stages)}, pos_embed {list(pos)}, pos_embed_window {list(window)}"
    for size in HIERA_SIZES:
        if (size.embed_dim, size.blocks_per_stage) == (embed_dim, stages):
            if pos[2:] != size.pos_embed_size or window[2:] != (size.window_size_per_stage[0],) * 2:
                raise MetaCheckpointError(f"hiera-{size.name} trunk with unexpected positional tables: {found}")
            return size
    known = "; ".join(f"{s.name}: {s.embed_dim}, {list(s.blocks_per_stage)}" for s in HIERA_SIZES)
    raise MetaCheckpointError(f"unknown Hiera layout ({found}); known trunks (embed dim, blocks per stage): {known}")


def infer_config(meta: dict[str, torch.Tensor], image_size: int = 1024) -> tuple[Any, HieraSize]:
    """The `Sam2Config` of a Meta state dict (shapes + `HIERA_SIZES`). `image_size` is the
    encoder's square input: 1024 for every released SAM2; smaller sizes run the same weights
    (positional tables are interpolated) and keep tests fast."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32 (Hiera downsamples 32×), got {image_size}")
    size = infer_hiera_size(meta)
    stages = len(size.blocks_per_stage)
    dims = [_shape(meta, f"{_TRUNK}blocks.{sum(size.blocks_per_stage[: s + 1]) - 1}.norm2.weight")[0] for s in range(stages)]
    kernel = _shape(meta, _TRUNK + "patch_embed.proj.weight")[2:]
    necks = _indices(meta, "image_encoder.neck.convs.")
    if not necks:
        raise MetaCheckpointError("missing keys: image_encoder.neck.convs.N.conv.weight (the FPN neck)")
    neck_shapes = [_shape(meta, f"image_encoder.neck.convs.{i}.conv.weight") for i in necks]
    if [s[1] for s in neck_shapes] != dims[::-1]:
        raise MetaCheckpointError(f"FPN neck inputs {[s[1] for s in neck_shapes]} do not match the trunk's widths {dims[::-1]}")
    hidden = neck_shapes[0][0]
    decoder_layers = _indices(meta, _DEC + "transformer.layers.")
    attn_dim = _shape(meta, _DEC + "transformer.layers.0.cross_attn_token_to_image.q_proj.weight")[0]
    backbone = Sam2HieraDetConfig(
        hidden_size=size.embed_dim,
        num_attention_heads=size.num_heads,
        embed_dim_per_stage=dims,
        num_attention_heads_per_stage=[size.num_heads * 2**s for s in range(stages)],
        blocks_per_stage=list(size.blocks_per_stage),
        window_size_per_stage=list(size.window_size_per_stage),
        global_attention_blocks=list(size.global_attention_blocks),
        window_positional_embedding_background_size=list(size.pos_embed_size),
        patch_kernel_size=list(kernel),
        image_size=[image_size, image_size],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[s[1] for s in neck_shapes],
        backbone_feature_sizes=[[image_size // stride] * 2 for stride in (4, 8, 16)],
        fpn_hidden_size=hidden,
        fpn_kernel_size=neck_shapes[0][2],
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config={
            "hidden_size": _shape(meta, "sam_prompt_encoder.no_mask_embed.weight")[1],
            "image_size": image_size,
            "patch_size": 16,
            "mask_input_channels": _shape(meta, "sam_prompt_encoder.mask_downscaling.3.weight")[0],
            "num_point_embeddings": len(_indices(meta, "sam_prompt_encoder.point_embeddings.")),
        },
        mask_decoder_config={
            "hidden_size": _shape(meta, _DEC + "iou_token.weight")[1],
            "num_hidden_layers": len(decoder_layers),
            "mlp_dim": _shape(meta, _DEC + "transformer.layers.0.mlp.layers.0.weight")[0],
            "num_attention_heads": DECODER_HEADS,
            "attention_downsample_rate": _shape(meta, _DEC + "iou_token.weight")[1] // attn_dim,
            "num_multimask_outputs": _shape(meta, _DEC + "mask_tokens.weight")[0] - 1,
            "iou_head_hidden_dim": _shape(meta, _DEC + "iou_prediction_head.layers.0.weight")[0],
        },
    )
    return config, size


def convert_state_dict(meta: dict[str, torch.Tensor], image_size: int = 1024) -> MetaConversion:
    """Meta's state dict → transformers' (see the module docstring for the mapping). Raises
    MetaCheckpointError naming unmapped, missing or mis-shaped keys."""
    from transformers import Sam2Model

    config, size = infer_config(meta, image_size)
    out, dropped, unmapped = _rename(meta)
    if unmapped:
        raise MetaCheckpointError(f"unexpected keys (neither image-model nor known video-memory tensors): {_short(unmapped)}")
    with torch.device("meta"):  # shapes only: no memory, no random init
        expected = {k: tuple(v.shape) for k, v in Sam2Model(config).state_dict().items()}
    missing = sorted({meta_key_for(k) for k in expected if k not in out})
    if missing:
        raise MetaCheckpointError(f"missing keys: {_short(missing)}")
    extra = sorted(k for k in out if k not in expected)
    if extra:  # a rule produced a key the model lacks: e.g. a head deeper than SAM2's
        raise MetaCheckpointError(f"unexpected keys: {_short([meta_key_for(k) for k in extra])}")
    wrong = [f"{meta_key_for(k)} {list(out[k].shape)} (expected {list(expected[k])})" for k in expected if tuple(out[k].shape) != expected[k]]
    if wrong:
        raise MetaCheckpointError(f"wrong shapes for hiera-{size.name}: {_short(wrong, 3)}")
    return MetaConversion(out, config, size, tuple(sorted(dropped)))


# What torch.load / safetensors raise on a damaged file (a truncated zip, a stray text file, a
# cut-off pickle, a corrupt header); each becomes one MetaCheckpointError line.
_READ_ERRORS = (
    RuntimeError, EOFError, KeyError, IndexError, ValueError, TypeError, AttributeError,
    UnicodeDecodeError, zipfile.BadZipFile, pickle.UnpicklingError, OSError,
)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a Meta SAM2 checkpoint file: `{"model": state_dict}` (as Meta ships it)
    or a bare state dict, from a torch file (`weights_only=True`: tensors and plain
    containers only, never arbitrary objects) or a .safetensors file.

    Raises MetaCheckpointError (one line) for a missing file, an unreadable or damaged one,
    a file that holds more than tensors, and one that is not SAM2 in Meta's layout.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "no such file"
        raise MetaCheckpointError(f"{path}: {what}")
    from safetensors import SafetensorError

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(path, device="cpu")
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function reference
            raise MetaCheckpointError(
                f"{path}: refused: the file holds Python objects besides tensors (loaded with weights_only=True; "
                "a Meta SAM2 checkpoint holds only tensors)"
            ) from exc
        raise MetaCheckpointError(f"{path}: truncated or corrupted, not a readable checkpoint ({_first_line(exc)})") from exc
    except (SafetensorError, *_READ_ERRORS) as exc:
        raise MetaCheckpointError(f"{path}: truncated or corrupted, not a readable checkpoint ({_first_line(exc)})") from exc
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise MetaCheckpointError(f"{path}: not a SAM2 checkpoint: expected {{'model': state_dict}} or a state dict of tensors")
    if not any(k.startswith(_TRUNK) for k in data) or not any(k.startswith(_DEC) for k in data):
        hint = (
            "; it is in transformers' layout: pass the folder with its config.json instead"
            if any(k.startswith("vision_encoder.") for k in data)
            else f" (its keys look like: {_short(list(data), 3)})"
        )
        raise MetaCheckpointError(f"{path}: not a SAM2 checkpoint in Meta's layout (no {_TRUNK}* / {_DEC}* keys){hint}")
    bad = [k for k, v in data.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # torch files carry no checksum: non-finite weights are the damage we can see
        raise MetaCheckpointError(f"{path}: corrupted: non-finite values in {_short(bad, 3)}")
    return data


def model_from_conversion(conversion: MetaConversion, dtype: torch.dtype = torch.float32) -> Any:
    """The transformers `Sam2Model` (eval mode) holding a converted checkpoint's weights."""
    from transformers import Sam2Model

    with torch.device("meta"):
        model = Sam2Model(conversion.config)
    model = model.to_empty(device="cpu")  # every tensor is persistent: load_state_dict fills them all
    model.load_state_dict(conversion.state_dict, strict=True)
    return model.to(dtype).eval()


def load_meta_checkpoint(
    path: str | Path, dtype: torch.dtype = torch.float32, image_size: int = 1024
) -> Any:
    """A transformers `Sam2Model` (eval mode) from a Meta SAM2 checkpoint file; see
    `read_checkpoint` and `convert_state_dict` for what is checked."""
    model = model_from_conversion(convert_state_dict(read_checkpoint(path), image_size=image_size), dtype)
    model.config.name_or_path = str(path)
    return model
