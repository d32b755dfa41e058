"""Torch-free runtime: ONNX Runtime and TensorRT back ends behind `ReasoningSegmenter`.

Imports here must stay light (numpy, tokenizers, onnxruntime inside functions): a test
checks that `import segzero_edge.runtime` leaves torch, transformers and trl unimported.
"""

from __future__ import annotations

__all__: list[str] = []
