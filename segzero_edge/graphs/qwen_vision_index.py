"""Host-side (numpy) grid-dependent indices of the Qwen2.5-VL vision tower.

transformers computes these inside the forward pass with `.tolist()` and Python loops over
grid_thw (`transformers.vision_utils`), which no graph exporter can capture. We compute them
here once per grid and feed them to vision.onnx as inputs:

- `vision_position_ids`: the (row, col) of every patch, for the 2-D rotary embedding.
- `window_index` / `cu_window_seqlens`: HF's window permutation of merged tokens and the
  window boundaries in that permuted order (exact replicas, used by the parity tests).
- `padded_windows`: the same windows as fixed-size slots for batched attention in the graph:
  every window is padded to (window_size / patch_size)^2 = 64 patches; border windows of a
  grid that does not divide evenly (60x60 patches at 840 px) hold fewer real patches.

The graph keeps patches in processor order (no permutation): attention inside a window does
not depend on the order of its members, and full attention spans the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VisionGeometry:
    """Grid constants of a Qwen2.5-VL vision tower (from its vision_config)."""

    patch_size: int = field(default=14, metadata={"help": "patch side in pixels"})
    spatial_merge_size: int = field(default=2, metadata={"help": "merge factor: merge^2 patches -> one LLM token"})
    window_size: int = field(default=112, metadata={"help": "attention window side in pixels"})

    def __post_init__(self) -> None:
        unit = self.patch_size * self.spatial_merge_size
        if min(self.patch_size, self.spatial_merge_size, self.window_size) <= 0:
            raise ValueError(f"VisionGeometry fields must be positive, got {self}")
        if self.window_size % unit:
            raise ValueError(
                f"window_size {self.window_size} must be a multiple of patch_size*spatial_merge_size = {unit}"
            )

    @property
    def merge_unit(self) -> int:
        """Patches per merged token (4)."""
        return self.spatial_merge_size**2

    @property
    def merged_window(self) -> int:
        """Window side in merged tokens (112 / 28 = 4)."""
        return self.window_size // (self.patch_size * self.spatial_merge_size)

    @property
    def window_len(self) -> int:
        """Patches in a full window (4*4 merged tokens * 4 = 64)."""
        return self.merged_window**2 * self.merge_unit


def _grids(grid_thw: np.ndarray) -> np.ndarray:
    grid_thw = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
    if (grid_thw <= 0).any():
        raise ValueError(f"grid_thw entries must be positive, got {grid_thw.tolist()}")
    return grid_thw


def vision_position_ids(grid_thw: np.ndarray, spatial_merge_size: int = 2) -> np.ndarray:
    """[N, 2] int64 (row, col) of each patch in processor (merge-block) order; N = sum(t*h*w)."""
    out = []
    m = spatial_merge_size
    for t, h, w in _grids(grid_thw):
        if h % m or w % m:
            raise ValueError(f"grid {h}x{w} is not divisible by spatial_merge_size {m}")
        hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        block = (h // m, m, w // m, m)
        hh = hh.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        ww = ww.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        out.append(np.tile(np.stack([hh, ww], axis=-1), (int(t), 1)))
    return np.concatenate(out, axis=0).astype(np.int64)


def cu_seqlens(grid_thw: np.ndarray) -> np.ndarray:
    """[n_frames + 1] int32 boundaries of the full-attention segments (one per frame)."""
    grid_thw = _grids(grid_thw)
    lengths = np.repeat(grid_thw[:, 1] * grid_thw[:, 2], grid_thw[:, 0])
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def window_index(grid_thw: np.ndarray, geometry: VisionGeometry | None = None) -> tuple[np.ndarray, np.ndarray]:
    """HF's `get_vision_window_index`: (window_index [N/4] int64, cu_window_seqlens [n_windows+1] int32).

    window_index lists merged tokens window by window (windows row-major, tokens row-major
    inside); cu_window_seqlens are patch boundaries in that order. Like HF, a grid side that
    divides evenly still gets a full padding window, whose zero-length boundary is dropped.
    """
    g = geometry or VisionGeometry()
    vw, m = g.merged_window, g.spatial_merge_size
    indices: list[np.ndarray] = []
    bounds: list[int] = [0]
    offset = 0
    for t, h, w in _grids(grid_thw):
        lh, lw = int(h) // m, int(w) // m
        index = np.arange(t * lh * lw).reshape(t, lh, lw)
        pad_h, pad_w = vw - lh % vw, vw - lw % vw
        nh, nw = (lh + pad_h) // vw, (lw + pad_w) // vw
        padded = np.pad(index, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=-100)
        padded = padded.reshape(t, nh, vw, nw, vw).transpose(0, 1, 3, 2, 4).reshape(t, nh * nw, vw, vw)
        seqlens = (padded != -100).sum(axis=(2, 3)).reshape(-1)
        flat = padded.reshape(-1)
        indices.append(flat[flat != -100] + offset)
        bounds.extend((np.cumsum(seqlens) * g.merge_unit + bounds[-1]).tolist())
        offset += int(t) * lh * lw
    cu = np.asarray(bounds, dtype=np.int32)
    cu = cu[np.concatenate([[True], np.diff(cu) != 0])]  # torch.unique_consecutive
    return np.concatenate(indices).astype(np.int64), cu


def reverse_index(window_idx: np.ndarray) -> np.ndarray:
    """Inverse permutation of `window_index` (HF's `argsort(window_index)`)."""
    return np.argsort(window_idx, kind="stable").astype(np.int64)


@dataclass(frozen=True)
class PaddedWindows:
    """Windows as fixed-size slots over patches in processor order.

    gather: [W, L] int64 patch index of each slot (padding slots point at patch 0).
    valid:  [W, L] bool, False for padding slots (masked out as keys, dropped as queries).
    scatter: [N] int64 flat slot (w * L + j) holding each patch, to undo `gather`.
    """

    gather: np.ndarray
    valid: np.ndarray
    scatter: np.ndarray


def padded_windows(grid_thw: np.ndarray, geometry: VisionGeometry | None = None) -> PaddedWindows:
    """Fixed-length (geometry.window_len) windows equal to HF's windowed-attention segments."""
    g = geometry or VisionGeometry()
    w_idx, cu = window_index(grid_thw, g)
    # patch order after HF's permutation: each merged token expands to its merge_unit patches
    patch_order = (w_idx[:, None] * g.merge_unit + np.arange(g.merge_unit)).reshape(-1)
    lengths = np.diff(cu).astype(np.int64)
    n_win, L = lengths.size, g.window_len
    if lengths.max(initial=0) > L:
        raise AssertionError(f"window of {lengths.max()} patches exceeds the slot length {L}")
    slot = np.arange(L)[None, :]
    valid = slot < lengths[:, None]
    gather = np.zeros((n_win, L), dtype=np.int64)
    gather[valid] = patch_order  # row-major fill matches the window-by-window order
    flat_slots = np.flatnonzero(valid.reshape(-1))
    scatter = np.empty(patch_order.size, dtype=np.int64)
    scatter[patch_order] = flat_slots
    return PaddedWindows(gather=gather, valid=valid, scatter=scatter)


def rotary_inv_freq(head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """[head_dim // 4] float32 inverse frequencies of the axial (row, col) rotary embedding.

    Same float32 arithmetic as `Qwen2_5_VLVisionRotaryEmbedding.compute_axial_rope_parameters`.
    """
    if head_dim % 4:
        raise ValueError(f"vision head_dim must be a multiple of 4 (two axes x cos/sin halves), got {head_dim}")
    spatial_dim = head_dim // 2
    exponent = np.arange(0, spatial_dim, 2, dtype=np.float32) / np.float32(spatial_dim)
    # torch's float32 pow is correctly rounded; numpy's float32 pow is off by 1 ulp for some
    # entries, float64 pow rounded to float32 matches torch exactly.
    power = np.power(np.float64(theta), exponent.astype(np.float64)).astype(np.float32)
    return (np.float32(1.0) / power).astype(np.float32)


def rotary_cos_sin(position_ids: np.ndarray, head_dim: int, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each [N, head_dim] float32, for patch (row, col) ids [N, 2].

    Layout as HF: angles [row freqs | col freqs] (head_dim/2), repeated twice for rotate_half.
    """
    position_ids = np.asarray(position_ids)
    if position_ids.ndim != 2 or position_ids.shape[1] != 2:
        raise ValueError(f"position_ids must be [N, 2] (row, col), got shape {position_ids.shape}")
    freqs = position_ids.astype(np.float32)[:, :, None] * rotary_inv_freq(head_dim, theta)  # [N, 2, d/4]
    angles = freqs.reshape(position_ids.shape[0], -1)  # [N, d/2]: row block then col block
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
