"""Input/output names and constants of the reasoner's vision graph (`vision.onnx`).

Defined once, shared by the exporter (`segzero_edge.export.reasoner_vision`) and the
runtime (`segzero_edge.runtime.vision`). The text graphs' names live in
`segzero_edge.graphs.reasoner_text_io`.

vision.onnx — one image (grid_t = 1) per call; N = grid_h * grid_w patches (3600 at 840 px),
W windows of L = (window_size / patch_size)^2 = 64 patch slots (64 windows at 840 px),
D = vision head_dim (16 tiny, 80 for Qwen2.5-VL 3B/7B).

    pixel_values     [N, C*T*P*P]  float32  `qwen_preprocess.preprocess_image` (1176 wide)
    rotary_cos       [N, D]        float32  `qwen_vision_index.rotary_cos_sin` of the patch (row, col)
    rotary_sin       [N, D]        float32
    window_gather    [W, L]        int64    patch index per window slot (padding slots -> 0)
    window_valid     [W, L]        bool     False on padding slots (masked keys)
    window_scatter   [N]           int64    flat slot w*L + j of each patch (undoes window_gather)
  ->
    image_features   [N / 4, out_hidden]  float32, merged tokens in processor order: row r is
                                          spliced into the r-th <|image_pad|> token

N and W are dynamic (any grid whose sides are multiples of spatial_merge_size); L and D are
fixed by the model. The graph carries `VisionMeta` as JSON in its metadata (key VISION_META_KEY).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_edge.graphs.qwen_preprocess import QwenImageConfig
from segzero_edge.graphs.qwen_vision_index import (
    VisionGeometry,
    padded_windows,
    rotary_cos_sin,
    vision_position_ids,
)

# ---- vision.onnx -----------------------------------------------------------------------
PIXEL_VALUES = "pixel_values"
ROTARY_COS = "rotary_cos"
ROTARY_SIN = "rotary_sin"
WINDOW_GATHER = "window_gather"
WINDOW_VALID = "window_valid"
WINDOW_SCATTER = "window_scatter"
IMAGE_FEATURES = "image_features"

VISION_INPUTS: tuple[str, ...] = (PIXEL_VALUES, ROTARY_COS, ROTARY_SIN, WINDOW_GATHER, WINDOW_VALID, WINDOW_SCATTER)
VISION_OUTPUTS: tuple[str, ...] = (IMAGE_FEATURES,)

VISION_FILE = "vision.onnx"
VISION_META_KEY = "segzero_edge.vision"

#: Precisions `export_vision` writes (int8 = dynamic int8 MatMul weights, fp32 activations).
VISION_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

#: The image grid Seg-Zero uses: 840x840 px -> (1, 60, 60) patches -> 900 image tokens.
SEGZERO_GRID: tuple[int, int, int] = (1, 60, 60)


@dataclass(frozen=True)
class VisionMeta:
    """Everything the runtime needs besides the graph to turn an image into vision.onnx inputs."""

    image: QwenImageConfig = field(default_factory=QwenImageConfig, metadata={"help": "image preprocessing"})
    geometry: VisionGeometry = field(default_factory=VisionGeometry, metadata={"help": "patch/merge/window sizes"})
    head_dim: int = field(default=80, metadata={"help": "vision attention head dim (rotary width)"})
    rope_theta: float = field(default=10000.0, metadata={"help": "vision rotary base"})
    out_hidden: int = field(default=2048, metadata={"help": "image feature width (= text hidden size)"})
    precision: str = field(default="fp32", metadata={"help": "graph precision: fp32 | fp16 | int8"})

    def __post_init__(self) -> None:
        if self.head_dim <= 0 or self.head_dim % 4:
            raise ValueError(f"head_dim must be a positive multiple of 4, got {self.head_dim}")
        if self.out_hidden <= 0:
            raise ValueError(f"out_hidden must be positive, got {self.out_hidden}")
        if self.precision not in VISION_PRECISIONS:
            raise ValueError(f"precision {self.precision!r} not in {VISION_PRECISIONS}")
        if self.image.patch_size != self.geometry.patch_size or self.image.merge_size != self.geometry.spatial_merge_size:
            raise ValueError(
                f"preprocessing (patch {self.image.patch_size}, merge {self.image.merge_size}) disagrees with the "
                f"vision tower (patch {self.geometry.patch_size}, merge {self.geometry.spatial_merge_size})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image.to_dict(),
            "geometry": {
                "patch_size": self.geometry.patch_size,
                "spatial_merge_size": self.geometry.spatial_merge_size,
                "window_size": self.geometry.window_size,
            },
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "out_hidden": self.out_hidden,
            "precision": self.precision,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VisionMeta:
        return cls(
            image=QwenImageConfig.from_dict(d["image"]),
            geometry=VisionGeometry(**d["geometry"]),
            head_dim=int(d["head_dim"]),
            rope_theta=float(d["rope_theta"]),
            out_hidden=int(d["out_hidden"]),
            precision=str(d["precision"]),
        )

    @classmethod
    def from_json(cls, text: str) -> VisionMeta:
        return cls.from_dict(json.loads(text))


def grid_inputs(grid_thw: np.ndarray, meta: VisionMeta) -> dict[str, np.ndarray]:
    """The grid-dependent vision.onnx inputs (rotary tables, window slots) for one image grid [1, 3]."""
    grid_thw = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
    if grid_thw.shape[0] != 1 or grid_thw[0, 0] != 1:
        raise ValueError(f"vision.onnx takes one still image (grid_thw [[1, h, w]]), got {grid_thw.tolist()}")
    cos, sin = rotary_cos_sin(
        vision_position_ids(grid_thw, meta.geometry.spatial_merge_size), meta.head_dim, meta.rope_theta
    )
    windows = padded_windows(grid_thw, meta.geometry)
    return {
        ROTARY_COS: cos,
        ROTARY_SIN: sin,
        WINDOW_GATHER: windows.gather,
        WINDOW_VALID: windows.valid,
        WINDOW_SCATTER: windows.scatter,
    }
