"""Export the Qwen2.5-VL vision tower to ONNX (`vision.onnx`).

HF's `Qwen2_5_VisionTransformerPretrainedModel.forward` builds its window permutation,
rotary table and `cu_seqlens` with `.tolist()` and Python loops over grid_thw, and splits
attention per segment with `torch.split(lengths.tolist())`: no exporter captures that. The
wrapper keeps HF's weights and submodules (patch embedding weights, RMSNorms, qkv/proj,
MLPs, merger) and replaces only that plumbing:

- grid-dependent tensors come in as inputs, computed on the host by
  `segzero_edge.graphs.qwen_vision_index` (rotary cos/sin, padded window slots);
- windowed blocks attend inside fixed 64-slot windows, batched [W, heads, 64, 64] with a key
  mask for the padding slots of border windows; full-attention blocks attend over all N
  patches of the (single) image;
- patches stay in processor order, so HF's window permutation and its inverse cancel out.

Conv3d with stride = kernel over a flattened patch is a matmul with the reshaped kernel; the
graph uses the MatMul so int8 dynamic quantization covers it too.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from segzero_edge.export.onnx_io import needs_external_data, save_program
from segzero_edge.export.precision import PrecisionPolicy, convert
from segzero_edge.graphs import reasoner_vision_io as io
from segzero_edge.graphs.qwen_preprocess import QwenImageConfig
from segzero_edge.graphs.qwen_vision_index import VisionGeometry

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: The vision tower's precision policy. fp16: softmax and the RMSNorm statistics stay float32
#: (squares of vision activations overflow fp16's 65504), I/O float32. int8: every MatMul
#: (patch embedding, qkv/proj, MLPs, merger), per-tensor scales.
PRECISION_POLICY = PrecisionPolicy(
    fp16_keep_fp32_ops=("Softmax", "Pow", "ReduceMean", "Sqrt", "Reciprocal", "Rsqrt"),
    int8_ops=("MatMul",),
    int8_per_channel=False,
    int8_prepare=True,
)


def _visual(model: nn.Module) -> nn.Module:
    """The vision tower of a Qwen2.5-VL model (ForConditionalGeneration, Model, or the tower itself)."""
    for path in ("model.visual", "visual"):
        obj = model
        for name in path.split("."):
            obj = getattr(obj, name, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    if hasattr(model, "blocks") and hasattr(model, "merger"):
        return model
    raise TypeError(f"{type(model).__name__} has no Qwen2.5-VL vision tower (.model.visual / .visual)")


class VisionExportWrapper(nn.Module):
    """Flat-tensor Qwen2.5-VL vision tower for one image; I/O as in `segzero_edge.graphs.reasoner_vision_io` (vision.onnx)."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        cfg = visual.config
        self.visual = visual
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.hidden_size // cfg.num_heads
        self.embed_dim = cfg.hidden_size
        self.fullatt = frozenset(cfg.fullatt_block_indexes)

    def _attention(
        self,
        attn: nn.Module,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        windows: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """x [N, E] -> [N, E]; windowed when `windows` = (gather [W, L], valid [W, L], scatter [N])."""
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

        n = x.shape[0]
        q, k, v = attn.qkv(x).reshape(n, 3, self.num_heads, self.head_dim).unbind(1)  # [N, h, d]
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        if windows is None:
            q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [h, N, d]
            scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scaling
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v).transpose(0, 1).reshape(n, self.embed_dim)
        else:
            gather, valid, scatter = windows
            w, length = gather.shape
            q, k, v = (t[gather].permute(0, 2, 1, 3) for t in (q, k, v))  # [W, h, L, d]
            scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scaling  # [W, h, L, L]
            scores = scores.masked_fill(~valid[:, None, None, :], torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v).permute(0, 2, 1, 3).reshape(w * length, self.embed_dim)
            out = out[scatter]  # padding-slot queries are dropped here
        return attn.proj(out)

    def forward(
        self,
        pixel_values: torch.Tensor,
        rotary_cos: torch.Tensor,
        rotary_sin: torch.Tensor,
        window_gather: torch.Tensor,
        window_valid: torch.Tensor,
        window_scatter: torch.Tensor,
    ) -> torch.Tensor:
        """pixel_values [N, 1176], rotary_cos/sin [N, D], window_* -> image_features [N/4, out_hidden]."""
        weight = self.visual.patch_embed.proj.weight  # [E, C, T, P, P], matches the (C, T, P, P) row layout
        x = torch.matmul(pixel_values.to(weight.dtype), weight.reshape(self.embed_dim, -1).t())
        windows = (window_gather, window_valid, window_scatter)
        for i, blk in enumerate(self.visual.blocks):
            h = blk.norm1(x)
            x = x + self._attention(blk.attn, h, rotary_cos, rotary_sin, None if i in self.fullatt else windows)
            x = x + blk.mlp(blk.norm2(x))
        return self.visual.merger(x).float()


def _default_image_config(model: PreTrainedModel, cfg) -> QwenImageConfig:
    """The checkpoint's preprocessor_config.json when `model` was loaded from a local directory,
    else Qwen2.5-VL-Instruct's preprocessing with this tower's patch sizes."""
    source = Path(str(getattr(model, "name_or_path", "") or ""))
    if source.parts and (source / "preprocessor_config.json").is_file():
        return QwenImageConfig.from_pretrained(source)
    return QwenImageConfig(
        patch_size=cfg.patch_size, temporal_patch_size=cfg.temporal_patch_size, merge_size=cfg.spatial_merge_size
    )


def vision_meta(model: PreTrainedModel, image_config: QwenImageConfig | None = None, precision: str = "fp32"):
    """`VisionMeta` of a Qwen2.5-VL model; `image_config` defaults to `_default_image_config`.

    From a processor: `QwenImageConfig.from_dict(processor.image_processor.to_dict())`.
    """
    cfg = _visual(model).config
    geometry = VisionGeometry(cfg.patch_size, cfg.spatial_merge_size, cfg.window_size)
    image = image_config or _default_image_config(model, cfg)
    rope = getattr(cfg, "rope_parameters", None) or {}
    return io.VisionMeta(
        image=image,
        geometry=geometry,
        head_dim=cfg.hidden_size // cfg.num_heads,
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        out_hidden=cfg.out_hidden_size,
        precision=precision,
    )


def vision_inputs(grid_thw: np.ndarray, meta: io.VisionMeta, pixel_values: np.ndarray | None = None) -> dict:
    """Numpy feed dict for vision.onnx for one image grid [1, 3] (seeded random pixels when not given)."""
    feeds = io.grid_inputs(grid_thw, meta)
    if pixel_values is None:
        n = int(np.prod(grid_thw))
        pixel_values = np.random.default_rng(0).standard_normal((n, meta.image.patch_dim)).astype(np.float32)
    return {io.PIXEL_VALUES: pixel_values, **feeds}


def _export_fp32(
    wrapper: VisionExportWrapper, path: Path, grid: tuple[int, int, int], meta: io.VisionMeta,
    external_data: bool | None,
) -> None:
    feeds = vision_inputs(np.asarray([grid]), meta)
    args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in io.VISION_INPUTS)
    n_merged = torch.export.Dim("n_merged", min=1, max=1 << 16)
    n = meta.geometry.merge_unit * n_merged  # the merger needs whole merge units
    n_windows = torch.export.Dim("n_windows", min=1, max=1 << 14)
    dynamic_shapes = (
        {0: n},
        {0: n},
        {0: n},
        {0: n_windows},
        {0: n_windows},
        {0: n},
    )
    with warnings.catch_warnings():
        # the exporter's own dim names are replaced in `_finalize`; its notes about them are noise
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        program = torch.onnx.export(
            wrapper,
            args,
            input_names=list(io.VISION_INPUTS),
            output_names=list(io.VISION_OUTPUTS),
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    if external_data is None:  # the real fp32 tower (~2.7 GB) goes to `vision.onnx.data`
        external_data = needs_external_data(sum(p.numel() * p.element_size() for p in wrapper.parameters()))
    save_program(program, path, external_data=external_data)


#: symbolic dim names written into vision.onnx (the exporter's own are like "4*n_merged", "s79")
DIM_PATCHES, DIM_WINDOWS, DIM_MERGED = "n_patches", "n_windows", "n_merged"


def _finalize(path: Path, meta: io.VisionMeta) -> None:
    """Name the dynamic dims and store `meta` in the graph's metadata."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    dims = {io.PIXEL_VALUES: [DIM_PATCHES], io.ROTARY_COS: [DIM_PATCHES], io.ROTARY_SIN: [DIM_PATCHES],
            io.WINDOW_GATHER: [DIM_WINDOWS], io.WINDOW_VALID: [DIM_WINDOWS], io.WINDOW_SCATTER: [DIM_PATCHES],
            io.IMAGE_FEATURES: [DIM_MERGED]}
    for value in [*model.graph.input, *model.graph.output]:
        for axis, name in enumerate(dims.get(value.name, [])):
            value.type.tensor_type.shape.dim[axis].dim_param = name
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {io.VISION_META_KEY: meta.to_json()})
    onnx.save(model, str(path))


def convert_vision(src: str | Path, dst: str | Path, precision: str, external_data: bool | None = None) -> Path:
    """Write `precision` (fp16 | int8) of an fp32 vision.onnx `src` to `dst`; returns `dst`.

    `PRECISION_POLICY` says what each precision keeps in float32 or quantizes.
    """
    meta = read_vision_meta(src)
    if meta.precision != "fp32":
        raise ValueError(f"{src} is {meta.precision}; convert from the fp32 vision.onnx")
    if precision not in ("fp16", "int8"):
        raise ValueError(f"convert_vision precision must be 'fp16' or 'int8', got {precision!r}")
    convert(src, dst, precision, PRECISION_POLICY, external_data=external_data)
    meta = io.VisionMeta(meta.image, meta.geometry, meta.head_dim, meta.rope_theta, meta.out_hidden, precision)
    _finalize(Path(dst), meta)
    return Path(dst)


def export_vision(
    model: PreTrainedModel,
    path: str | Path,
    grid: tuple[int, int, int] = io.SEGZERO_GRID,
    precision: str = "fp32",
    image_config: QwenImageConfig | None = None,
    external_data: bool | None = None,
) -> Path:
    """Export the vision tower of `model` to `path` (vision.onnx) at `precision`; returns `path`.

    grid: the example (t, h, w) patch grid used for tracing; the graph accepts any one-image
    grid (N, W dynamic). precision: fp32 | fp16 (Softmax and RMSNorm statistics stay fp32,
    I/O stays float32) | int8 (dynamic int8 MatMul weights). The graph's metadata carries
    `VisionMeta` (preprocessing and geometry) under `reasoner_vision_io.VISION_META_KEY`.
    image_config: preprocessing recorded in the graph (default: the local checkpoint's
    preprocessor_config.json, else Qwen2.5-VL-Instruct's).
    external_data: weights in `<path>.data` (None: only when over 2 GB, e.g. the real fp32 tower).
    """
    if precision not in io.VISION_PRECISIONS:
        raise ValueError(f"precision {precision!r} not supported for vision.onnx; choose from {io.VISION_PRECISIONS}")
    if len(grid) != 3 or grid[0] != 1:
        raise ValueError(f"grid must be (1, h, w) for one still image, got {grid}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    visual = _visual(model)
    if next(visual.parameters()).dtype != torch.float32:
        raise ValueError(
            f"export the vision tower from float32 weights (got {next(visual.parameters()).dtype}); "
            "load the model with dtype=torch.float32 and pick precision='fp16' here instead"
        )
    meta = vision_meta(model, image_config, "fp32")
    fp32_path = path if precision == "fp32" else path.with_name(path.stem + ".fp32.tmp.onnx")
    try:
        with torch.no_grad():
            _export_fp32(VisionExportWrapper(visual).eval(), fp32_path, grid, meta, external_data)
        _finalize(fp32_path, meta)
        if precision != "fp32":
            convert_vision(fp32_path, path, precision, external_data)
    finally:
        if fp32_path != path:
            fp32_path.unlink(missing_ok=True)
            fp32_path.with_name(fp32_path.name + ".data").unlink(missing_ok=True)
    return path


def read_vision_meta(path: str | Path) -> io.VisionMeta:
    """The `VisionMeta` stored in a vision.onnx file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if io.VISION_META_KEY not in props:
        raise ValueError(f"{path} has no {io.VISION_META_KEY!r} metadata; re-export it with export_vision")
    return io.VisionMeta.from_dict(json.loads(props[io.VISION_META_KEY]))
