"""`OrtVision`: Qwen2.5-VL image features from vision.onnx, torch-free.

    vision = OrtVision("engines/reasoner/vision.onnx", provider="cpu")
    features, grid_thw = vision.features(rgb_840)   # [900, hidden] float32, [[1, 60, 60]]

Preprocessing (`graphs.qwen_preprocess`) and the grid-dependent graph inputs
(`graphs.reasoner_vision_io.grid_inputs`) run in numpy; the graph inputs depend only on the
grid, so they are cached per grid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.graphs import reasoner_vision_io as io
from segzero_edge.graphs.qwen_preprocess import preprocess_image
from segzero_edge.runtime.providers import SpinPolicy, check_io, create_session


def read_meta(session: Any, path: str | Path, required: bool = True) -> io.VisionMeta | None:
    """The `VisionMeta` stored in the graph's metadata by `export_vision` (None if absent and not required)."""
    props = session.get_modelmeta().custom_metadata_map
    if io.VISION_META_KEY not in props:
        if not required:
            return None
        raise ValueError(
            f"{path} has no {io.VISION_META_KEY!r} metadata (not written by export_vision?); "
            "re-export it or pass meta= explicitly"
        )
    return io.VisionMeta.from_dict(json.loads(props[io.VISION_META_KEY]))


class OrtVision:
    """vision.onnx on onnxruntime: RGB uint8 image -> image features, one image per call.

    path: the vision.onnx file. provider: "cpu" | "cuda" | "tensorrt" (`runtime.providers`).
    meta: `VisionMeta` or its dict (the manifest's record); None reads the graph's own. When
    both exist they must agree, so a manifest never silently disagrees with its graph.
    threads: intra-op threads (None: onnxruntime's default). spin: `providers.SpinPolicy`
    (None: onnxruntime's default, which spins). provider_options: see
    `providers.execution_providers` (device_id, trt_fp16, trt_cache_dir).
    """

    def __init__(
        self,
        path: str | Path,
        provider: str = "cpu",
        *,
        meta: io.VisionMeta | dict[str, Any] | None = None,
        threads: int | None = None,
        spin: SpinPolicy | None = None,
        **provider_options: Any,
    ) -> None:
        self.path = Path(path)
        self.session = create_session(self.path, provider, threads=threads, spin=spin, **provider_options)
        check_io(self.session, io.VISION_INPUTS, io.VISION_OUTPUTS, str(self.path))
        stored = read_meta(self.session, self.path, required=meta is None)
        if isinstance(meta, dict):
            meta = io.VisionMeta.from_dict(meta)
        if meta is not None and stored is not None and meta != stored:
            raise ValueError(
                f"{self.path}: the given meta {meta.to_dict()} differs from the graph's own {stored.to_dict()}; "
                "the engine directory mixes exports"
            )
        self.meta: io.VisionMeta = meta if meta is not None else stored
        self._grid_cache: dict[tuple[int, ...], dict[str, np.ndarray]] = {}
        self.last_ms: dict[str, float] = {}

    @classmethod
    def from_file(cls, path: str | Path, provider: str = "cpu", **kwargs: Any) -> OrtVision:
        """Same as `OrtVision(path, provider, **kwargs)`."""
        return cls(path, provider, **kwargs)

    def inputs(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(feed dict, grid_thw [1, 3] int64) for an RGB uint8 HxWx3 image."""
        pixel_values, grid_thw = preprocess_image(image, self.meta.image)
        key = tuple(grid_thw.reshape(-1).tolist())
        if key not in self._grid_cache:
            self._grid_cache[key] = io.grid_inputs(grid_thw, self.meta)
        return {io.PIXEL_VALUES: pixel_values, **self._grid_cache[key]}, grid_thw

    def features(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 HxWx3 -> (features [n_tokens, out_hidden] float32, grid_thw [1, 3] int64).

        Row r of features replaces the r-th <|image_pad|> token; n_tokens = h*w/4 (900 for an
        840x840 image). Timings of the last call are in `last_ms` (preprocess, graph).
        """
        start = time.perf_counter()
        feeds, grid_thw = self.inputs(image)
        mid = time.perf_counter()
        (features,) = self.session.run([io.IMAGE_FEATURES], feeds)
        end = time.perf_counter()
        self.last_ms = {"preprocess": (mid - start) * 1e3, "graph": (end - mid) * 1e3}
        return np.asarray(features, dtype=np.float32), grid_thw
