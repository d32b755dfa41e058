"""`ReasoningSegmenter`: the runtime's front door. One engine directory in, masks out.

    seg = ReasoningSegmenter.from_dir("engines/", provider="cpu")
    r = seg.segment(image, "the object used for cutting")

Everything (graph files, precisions, preprocessing, prompt, token ids) comes from the
verified manifest; nothing is guessed.
"""

from __future__ import annotations

from pathlib import Path

from segzero_edge.manifest import EngineError, Manifest, read_manifest
from segzero_edge.pipeline import ReasoningPipeline
from segzero_edge.runtime.providers import PROVIDERS, Provider, check_provider


class ReasoningSegmenter(ReasoningPipeline):
    """The Seg-Zero chain on ONNX Runtime / TensorRT back ends.

    `.reasoner` and `.segmenter` are the protocol objects; `.manifest` the verified manifest.
    """

    def __init__(self, reasoner, segmenter, manifest: Manifest | None = None) -> None:
        super().__init__(reasoner, segmenter)
        self.manifest = manifest

    @classmethod
    def from_dir(
        cls,
        path: str | Path | None = None,
        provider: Provider = "cpu",
        *,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> ReasoningSegmenter:
        """Load and verify an engine directory (the shipped default when `path` is None).

        Raises `EngineError` for a missing or altered file or an unreadable manifest,
        `ValueError` for an unknown provider and `RuntimeError` for one this onnxruntime lacks.
        """
        check_provider(provider)  # before reading any file: a wrong provider is the cheaper error
        if path is None:
            from segzero_edge import default_engines

            path = default_engines()
        root = Path(path)
        manifest = read_manifest(root)
        from segzero_edge.runtime.reasoner import OrtReasoner
        from segzero_edge.runtime.segmenter import OrtSegmenter

        reasoner_meta = manifest.component("reasoner")
        segmenter_meta = manifest.component("segmenter")
        reasoner = OrtReasoner.from_dir(root / "reasoner", provider=provider, meta=reasoner_meta)
        overrides = {
            k: v
            for k, v in {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}.items()
            if v is not None
        }
        if overrides:
            reasoner.configure(**overrides)
        plans = manifest.components.get("trt", {})
        if provider == "tensorrt" and plans.get("segmenter"):
            from segzero_edge.runtime.trt_segmenter import TrtSegmenter

            segmenter = TrtSegmenter.from_dir(root / "trt", meta=segmenter_meta, plans=plans["segmenter"])
        else:
            segmenter = OrtSegmenter.from_dir(root / "segmenter", provider=provider, meta=segmenter_meta)
        return cls(reasoner, segmenter, manifest)


__all__ = ["PROVIDERS", "EngineError", "Provider", "ReasoningSegmenter"]
