"""torch → ONNX → quantized ONNX / TensorRT export, the engine manifest, parity checks."""

from __future__ import annotations

__all__: list[str] = []
