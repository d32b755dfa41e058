"""Torch-free multimodal RoPE (M-RoPE) position ids for Qwen2-VL / Qwen2.5-VL.

`rope_index` reproduces transformers' `Qwen2_5_VLModel.get_rope_index` (5.x): text tokens get
one position shared by the (t, h, w) rows; each run of image (or video) pad tokens gets a
(t, h, w) grid of positions offset by the running position, after which the running position
advances by max(h, w) / merge, not by the number of pad tokens. So the last position is
usually smaller than S-1, and `deltas = max_position + 1 - S_valid` (<= 0) carries that
shift into decoding: token k after the prompt sits at position S_valid + k + delta on all
three rows (`decode_position_ids`).

For still images Qwen2-VL and Qwen2.5-VL give identical ids; they differ only in video
temporal spacing (`tokens_per_second=None` selects Qwen2-VL's unit spacing).
"""

from __future__ import annotations

import numpy as np

TEXT, IMAGE, VIDEO = 0, 1, 2


def _runs(types: np.ndarray) -> list[tuple[int, int, int]]:
    """(type, start, end) for each maximal run of equal values in a 1-D array."""
    if types.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(types)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [types.size]])
    return [(int(types[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def vision_rope_positions(
    start: int, grid_thw: np.ndarray, spatial_merge_size: int = 2, time_interval: float | int = 1
) -> np.ndarray:
    """Positions [3, t*(h/m)*(w/m)] of one image/video's LLM tokens, offset by `start`.

    Rows are (temporal, height, width), tokens in row-major (t, h, w) order — the order the
    vision merger emits them in.
    """
    t, h, w = (int(v) for v in np.asarray(grid_thw).reshape(3))
    gh, gw = h // spatial_merge_size, w // spatial_merge_size
    if isinstance(time_interval, (int, np.integer)):
        temporal = np.arange(t, dtype=np.int64) * int(time_interval)
    else:  # torch multiplies int64 arange by a float32 scalar tensor, then truncates with .long()
        temporal = (np.arange(t).astype(np.float32) * np.float32(time_interval)).astype(np.int64)
    tt, hh, ww = np.meshgrid(temporal, np.arange(gh) + start, np.arange(gw) + start, indexing="ij")
    pos = np.stack([tt, hh, ww]).reshape(3, -1).astype(np.int64)
    pos[0] += start
    return pos


def rope_index(
    input_ids: np.ndarray,
    image_grid_thw: np.ndarray | None = None,
    attention_mask: np.ndarray | None = None,
    *,
    image_token_id: int,
    spatial_merge_size: int = 2,
    video_token_id: int | None = None,
    video_grid_thw: np.ndarray | None = None,
    second_per_grid_ts: np.ndarray | None = None,
    tokens_per_second: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """3-D RoPE position ids of a (left- or right-) padded batch.

    Args:
        input_ids: [B, S] int token ids; each image is one contiguous run of `image_token_id`
            (separated by <|vision_start|>/<|vision_end|> in real prompts).
        image_grid_thw: [n_images, 3] patch grids of the images, in order of appearance
            across the whole batch (row 0's images first).
        attention_mask: [B, S] 1 = token, 0 = padding; padded slots get position 0.
        image_token_id: the <|image_pad|> id.
        spatial_merge_size: vision merge factor (2).
        video_token_id, video_grid_thw, second_per_grid_ts: video runs (optional).
        tokens_per_second: Qwen2.5-VL's vision_config.tokens_per_second (video temporal spacing
            = tokens_per_second * second_per_grid_ts); None = Qwen2-VL (spacing 1).

    Returns:
        position_ids: [3, B, S] int64 (rows t, h, w) — equals HF's `get_rope_index` output.
        deltas: [B, 1] int64, max position + 1 - number of valid tokens.
    """
    input_ids = np.asarray(input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [B, S], got shape {input_ids.shape}")
    b, s = input_ids.shape
    if attention_mask is not None:
        attention_mask = np.asarray(attention_mask)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
    grids = {
        IMAGE: iter(np.asarray(image_grid_thw, dtype=np.int64).reshape(-1, 3)) if image_grid_thw is not None else None,
        VIDEO: iter(np.asarray(video_grid_thw, dtype=np.int64).reshape(-1, 3)) if video_grid_thw is not None else None,
    }
    seconds = iter(np.asarray(second_per_grid_ts).reshape(-1)) if second_per_grid_ts is not None else None
    merge_area = spatial_merge_size * spatial_merge_size

    position_ids = np.zeros((3, b, s), dtype=np.int64)
    deltas = np.zeros((b, 1), dtype=np.int64)
    for row in range(b):
        keep = attention_mask[row].astype(bool) if attention_mask is not None else np.ones(s, dtype=bool)
        ids = input_ids[row][keep]
        types = np.zeros(ids.shape, dtype=np.int64)
        types[ids == image_token_id] = IMAGE
        if video_token_id is not None:
            types[ids == video_token_id] = VIDEO
        pieces: list[np.ndarray] = []
        pos = 0
        for kind, start, end in _runs(types):
            if kind == TEXT:
                pieces.append(np.broadcast_to(np.arange(end - start, dtype=np.int64) + pos, (3, end - start)))
                pos += end - start
                continue
            name = "image" if kind == IMAGE else "video"
            grid_iter = grids[kind]
            grid = next(grid_iter, None) if grid_iter is not None else None
            if grid is None:
                raise ValueError(
                    f"batch row {row} has more {name} token runs than {name}_grid_thw rows; "
                    f"pass one grid per {name} (in order of appearance)"
                )
            n_tokens = int(grid.prod()) // merge_area
            if end - start != n_tokens:
                raise ValueError(
                    f"batch row {row}: {name} run of {end - start} pad tokens at {start} but grid {grid.tolist()} "
                    f"needs {n_tokens} (t*h*w/{merge_area}); the prompt and grid_thw disagree"
                )
            interval: float | int = 1
            if kind == VIDEO and tokens_per_second is not None:
                # float32 like torch's `int * second_per_grid_ts[i]`; exact int without seconds
                sec = next(seconds, None) if seconds is not None else None
                interval = tokens_per_second if sec is None else np.float32(tokens_per_second) * np.float32(sec)
            pieces.append(vision_rope_positions(pos, grid, spatial_merge_size, interval))
            pos += int(max(grid[1], grid[2])) // spatial_merge_size
        if pieces:
            positions = np.concatenate(pieces, axis=1)
            position_ids[:, row, keep] = positions
            deltas[row, 0] = positions.max() + 1 - ids.size
        else:  # all padding: HF would fail on max() of an empty tensor
            raise ValueError(f"batch row {row} has no tokens (attention_mask is all zero)")
    for kind, name in ((IMAGE, "image"), (VIDEO, "video")):
        grid_iter = grids[kind]
        if grid_iter is not None and next(grid_iter, None) is not None:
            raise ValueError(f"{name}_grid_thw has more rows than {name} token runs in input_ids")
    return position_ids, deltas


def decode_position_ids(position_ids: np.ndarray, num_tokens: int = 1) -> np.ndarray:
    """Positions [3, B, num_tokens] of the next tokens after a sequence whose positions are given.

    `position_ids` is [3, B, S] (the prompt's `rope_index` output, or the previous decode
    step's output). Same update as transformers' generate (`position_ids[..., -1:] + 1 + k`),
    so with a prompt ending in text the first new token is at S_valid + delta on every row.
    """
    position_ids = np.asarray(position_ids)
    if position_ids.ndim != 3 or position_ids.shape[0] != 3:
        raise ValueError(f"position_ids must be [3, B, S], got shape {position_ids.shape}")
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
    return position_ids[..., -1:] + 1 + np.arange(num_tokens, dtype=np.int64)


def decode_position_ids_from_deltas(
    deltas: np.ndarray, cache_position: int | np.ndarray, num_tokens: int = 1
) -> np.ndarray:
    """Positions [3, B, num_tokens] = cache_position + k + deltas (no left padding).

    cache_position: number of tokens already in the KV cache (scalar or [B] valid counts
    when rows are left-padded: pass the per-row number of non-pad tokens so far).
    """
    deltas = np.asarray(deltas, dtype=np.int64).reshape(-1, 1)
    cache = np.asarray(cache_position, dtype=np.int64).reshape(-1, 1)
    pos = cache + np.arange(num_tokens, dtype=np.int64)[None, :] + deltas  # [B, num_tokens]
    return np.broadcast_to(pos[None], (3, *pos.shape)).copy()
