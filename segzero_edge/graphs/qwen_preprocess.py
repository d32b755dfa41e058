"""Torch-free reproduction of Qwen2-VL / Qwen2.5-VL image preprocessing.

Matches transformers' `Qwen2VLImageProcessorPil` (the PIL/numpy back end of
`Qwen2VLImageProcessor`) step for step, so pixel values agree to float32 rounding:

1. `smart_resize`: snap H, W to multiples of `patch_size * merge_size` (28) inside
   [min_pixels, max_pixels], keeping the aspect ratio; resample with PIL bicubic on uint8.
2. rescale in float64 (x * 1/255) then cast to float32, as `image_transforms.rescale` does.
3. normalise in float32 with the CLIP mean/std.
4. patchify: the frame is repeated `temporal_patch_size` times and patches are emitted in
   spatial-merge-block order: (block_row, block_col, in_row, in_col), each patch flattened as
   (C, T, P, P) -> pixel_values [grid_h * grid_w, C*T*P*P] (1176 for Qwen).

Seg-Zero feeds an 840x840 image (`segzero_edge.prompts.resize_for_reasoner`): 840 = 30 * 28
lies inside the pixel bounds, so no resampling happens and the grid is (1, 60, 60).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# OpenAI CLIP statistics, as in Qwen2.5-VL's preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class QwenImageConfig:
    """Preprocessing constants of a Qwen2(.5)-VL image processor (recorded in the engine manifest)."""

    patch_size: int = field(default=14, metadata={"help": "spatial patch side in pixels"})
    temporal_patch_size: int = field(
        default=2, metadata={"help": "frames per temporal patch; a still image is repeated this many times"}
    )
    merge_size: int = field(default=2, metadata={"help": "spatial merge factor (merge_size^2 patches -> 1 token)"})
    min_pixels: int = field(default=56 * 56, metadata={"help": "smallest H*W after smart_resize"})
    # Qwen2.5-VL-Instruct's preprocessor_config.json (the processor class default is 28*28*1280).
    max_pixels: int = field(default=28 * 28 * 16384, metadata={"help": "largest H*W after smart_resize"})
    image_mean: tuple[float, float, float] = field(default=CLIP_MEAN, metadata={"help": "per-channel mean (RGB)"})
    image_std: tuple[float, float, float] = field(default=CLIP_STD, metadata={"help": "per-channel std (RGB)"})
    do_resize: bool = field(default=True, metadata={"help": "apply smart_resize (bicubic)"})

    def __post_init__(self) -> None:
        for name in ("patch_size", "temporal_patch_size", "merge_size", "min_pixels", "max_pixels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"QwenImageConfig.{name} must be positive, got {getattr(self, name)}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}; swap or fix them")
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(f"image_mean/image_std need 3 values (RGB), got {self.image_mean} / {self.image_std}")
        if min(self.image_std) <= 0:
            raise ValueError(f"image_std must be positive, got {self.image_std}")
        # tuples keep the frozen config hashable even when built from JSON lists
        object.__setattr__(self, "image_mean", tuple(float(v) for v in self.image_mean))
        object.__setattr__(self, "image_std", tuple(float(v) for v in self.image_std))

    @property
    def factor(self) -> int:
        """Side multiple that every resized image has (28 for Qwen)."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Length of one flattened patch: C * T * P * P (1176 for Qwen)."""
        return 3 * self.temporal_patch_size * self.patch_size * self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for the manifest)."""
        d = asdict(self)
        d["image_mean"], d["image_std"] = list(self.image_mean), list(self.image_std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QwenImageConfig:
        """Build from `to_dict()` output or a Hugging Face `preprocessor_config.json` dict."""
        d = dict(d)
        size = d.get("size") or {}
        # HF 5.x stores the pixel bounds as size.shortest_edge/longest_edge; older files as min/max_pixels.
        min_pixels = d.get("min_pixels", size.get("shortest_edge", size.get("min_pixels")))
        max_pixels = d.get("max_pixels", size.get("longest_edge", size.get("max_pixels")))
        kwargs: dict[str, Any] = {}
        for key in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std", "do_resize"):
            if d.get(key) is not None:
                kwargs[key] = d[key]
        if min_pixels is not None:
            kwargs["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            kwargs["max_pixels"] = int(max_pixels)
        return cls(**kwargs)

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> QwenImageConfig:
        """Read `model_dir/preprocessor_config.json` (a local Hugging Face checkpoint)."""
        path = Path(model_dir) / "preprocessor_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"no preprocessor_config.json in {model_dir}; pass a Qwen2.5-VL checkpoint dir")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """(H', W') with both multiples of `factor`, H'*W' in [min_pixels, max_pixels], aspect ratio ~kept.

    Same arithmetic as transformers' `qwen2_vl.image_processing_qwen2_vl.smart_resize`
    (Python `round` is banker's rounding there too).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height}, width={width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)} "
            f"for {height}x{width}; crop the image first"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _check_rgb_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 array HxWx3, got shape {image.shape} dtype {image.dtype}; "
            "convert it with segzero_edge.images.load_image"
        )
    return image


def resize_image(image: np.ndarray, config: QwenImageConfig | None = None) -> np.ndarray:
    """Resize RGB uint8 HxWx3 to the `smart_resize` size with PIL bicubic (uint8 in, uint8 out)."""
    config = config or QwenImageConfig()
    image = _check_rgb_uint8(image)
    h, w = image.shape[:2]
    new_h, new_w = smart_resize(h, w, config.factor, config.min_pixels, config.max_pixels)
    if (new_h, new_w) == (h, w):
        return image  # PIL would return an identical copy
    # The HF PIL back end resizes the uint8 image through PIL with reducing_gap=None.
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), resample=Image.Resampling.BICUBIC))


def normalize_image(image: np.ndarray, config: QwenImageConfig | None = None) -> np.ndarray:
    """uint8 HxWx3 -> float32 HxWx3: (x/255 - mean) / std with HF's dtype sequence (float64 rescale)."""
    config = config or QwenImageConfig()
    scaled = (image.astype(np.float64) * (1 / 255)).astype(np.float32)
    mean = np.asarray(config.image_mean, dtype=np.float32)
    std = np.asarray(config.image_std, dtype=np.float32)
    return (scaled - mean) / std


def patchify(image: np.ndarray, config: QwenImageConfig | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Normalised float32 HxWx3 (sides multiples of `config.factor`) -> (pixel_values, (1, gh, gw)).

    pixel_values: [gh * gw, C*T*P*P] float32, rows in spatial-merge-block order
    (block_row, block_col, in_row, in_col), each row flattened as (C, T, P, P).
    """
    config = config or QwenImageConfig()
    p, m, t = config.patch_size, config.merge_size, config.temporal_patch_size
    h, w, c = image.shape
    if h % config.factor or w % config.factor:
        raise ValueError(f"image sides {h}x{w} must be multiples of {config.factor}; run resize_image first")
    gh, gw = h // p, w // p
    # [H, W, C] -> (gh/m, m, p, gw/m, m, p, C)
    x = image.reshape(gh // m, m, p, gw // m, m, p, c)
    # -> (gh/m, gw/m, m_h, m_w, C, p_h, p_w), the HF order with channels first inside a patch
    x = x.transpose(0, 3, 1, 4, 6, 2, 5)
    x = np.broadcast_to(x[:, :, :, :, :, None], (*x.shape[:5], t, p, p))
    pixel_values = np.ascontiguousarray(x.reshape(gh * gw, c * t * p * p), dtype=np.float32)
    return pixel_values, (1, gh, gw)


def preprocess_image(
    image: np.ndarray, config: QwenImageConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 HxWx3 -> (pixel_values float32 [N, 1176], grid_thw int64 [1, 3]).

    N = grid_h * grid_w patches (3600 for an 840x840 image, grid (1, 60, 60)). Equals
    `Qwen2VLImageProcessorPil(...)(images=image)` to float32 rounding.
    """
    config = config or QwenImageConfig()
    image = _check_rgb_uint8(image)
    if config.do_resize:
        image = resize_image(image, config)
    pixel_values, grid = patchify(normalize_image(image, config), config)
    return pixel_values, np.asarray([grid], dtype=np.int64)


def num_image_tokens(grid_thw: np.ndarray, merge_size: int = 2) -> int:
    """LLM tokens (<|image_pad|> count) for the images in grid_thw [n, 3]: sum(t*h*w) / merge^2."""
    grid_thw = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
    return int(grid_thw.prod(axis=1).sum()) // (merge_size * merge_size)
