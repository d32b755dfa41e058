"""Shared, process-cached fixtures for the segmenter tests: the tiny SAM2 reference and its
exported graphs (each precision exported once per test process, whichever module asks first)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="segzero-segmenter-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)


def _needs_torch() -> None:
    """The reference and every export need torch + transformers: skip where they are absent
    (the torch-free runtime lane)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")


@functools.cache
def tiny_segmenter_dir() -> Path:
    _needs_torch()
    from segzero_edge.testing import cached_tiny_models

    return cached_tiny_models(seed=0).segmenter


@functools.cache
def torch_segmenter() -> Any:
    """The reference, with encodes memoized per image (the tests encode the same images for
    every precision; the tiny Hiera takes ~1.5 s per image on this CPU)."""
    _needs_torch()
    from segzero_edge.models.segmenter import TorchSegmenter

    class MemoSegmenter(TorchSegmenter):
        _memo: ClassVar[dict[tuple, Any]] = {}

        def encode(self, image):
            key = (
                (getattr(image, "shape", None), hash(image.tobytes()))
                if isinstance(image, np.ndarray)
                else None
            )
            if key is None or key not in self._memo:
                result = super().encode(image)
                if key is None:
                    return result
                self._memo[key] = result
            return self._memo[key]

    return MemoSegmenter.from_pretrained(tiny_segmenter_dir())


@functools.cache
def exported(precision: str) -> tuple[Path, dict[str, Any]]:
    """(folder with encoder.onnx + decoder.onnx, component metadata) for one precision;
    fp16/int8 are converted from the fp32 export (`fp32_dir`) rather than exported again."""
    _needs_torch()
    from segzero_edge.export.segmenter import export_segmenter

    out = _ROOT / precision
    fp32_dir = None if precision == "fp32" else exported("fp32")[0]
    meta = export_segmenter(torch_segmenter().model, out, precision=precision, fp32_dir=fp32_dir)
    return out, meta


@functools.cache
def ort_segmenter(precision: str) -> Any:
    from segzero_edge.runtime.segmenter import OrtSegmenter

    folder, meta = exported(precision)
    return OrtSegmenter.from_dir(folder, meta=meta)


def scratch(name: str) -> Path:
    path = _ROOT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    from segzero_edge.export.verify_segmenter import random_image

    return random_image(np.random.default_rng(seed), height, width)
