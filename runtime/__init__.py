"""Torch-free runtime: ONNX Runtime and TensorRT back ends behind `ReasoningSegmenter`.

Imports here stay light (numpy, tokenizers; onnxruntime when a session is built): a test
checks that `import segzero_edge.runtime` leaves torch, transformers and trl unimported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EngineError", "GenerationConfig", "OrtReasoner", "OrtSegmenter", "ReasoningSegmenter", "Result"]

_LAZY = {
    "ReasoningSegmenter": ("segzero_edge.runtime.api", "ReasoningSegmenter"),
    "OrtReasoner": ("segzero_edge.runtime.reasoner", "OrtReasoner"),
    "OrtSegmenter": ("segzero_edge.runtime.segmenter", "OrtSegmenter"),
    "EngineError": ("segzero_edge.manifest", "EngineError"),
    "GenerationConfig": ("segzero_edge.generation", "GenerationConfig"),
    "Result": ("segzero_edge.pipeline", "Result"),
}


def __getattr__(name: str) -> Any:
    # Lazy so that `import segzero_edge.runtime` does not load onnxruntime until it is used.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'segzero_edge.runtime' has no attribute {name!r}")
