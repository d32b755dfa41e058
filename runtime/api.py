"""`ReasoningSegmenter`: the runtime's front door. One engine directory in, masks out.

    seg = ReasoningSegmenter.from_dir("engines/", provider="cpu")
    r = seg.segment(image, "the object used for cutting")

Everything (graph files, precisions, preprocessing, prompt, token ids) comes from the
verified manifest; nothing is guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segzero_edge.images import ImageLimits
from segzero_edge.manifest import EngineError, Manifest, answer_format, read_manifest
from segzero_edge.pipeline import MAX_QUERY_TOKENS, ReasoningPipeline
from segzero_edge.runtime.providers import PROVIDERS, Provider, check_provider, load_errors


class ReasoningSegmenter(ReasoningPipeline):
    """The Seg-Zero chain on ONNX Runtime / TensorRT back ends.

    `.reasoner` and `.segmenter` are the protocol objects; `.manifest` the verified manifest.
    The answer format (`.answer_format`, "single" | "multi") is the manifest's
    (`components.reasoner.prompt.answer_format`; manifests without one are "single").
    """

    def __init__(self, reasoner, segmenter, manifest: Manifest | None = None, **limits: Any) -> None:
        fmt = answer_format(manifest.data) if manifest is not None else None
        super().__init__(reasoner, segmenter, fmt, **limits)
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
        max_query_tokens: int = MAX_QUERY_TOKENS,
        image_limits: ImageLimits | None = None,
    ) -> ReasoningSegmenter:
        """Load and verify an engine directory (the shipped default when `path` is None).

        `max_query_tokens` and `image_limits` bound what `segment` accepts (see
        `ReasoningPipeline`). Raises `EngineError` (one line) for a missing, altered or out-of-directory file, a
        malformed manifest, or graphs the manifest does not describe; `ValueError` for an
        unknown provider and `RuntimeError` for one this onnxruntime install lacks.
        """
        check_provider(provider)  # before reading any file: a wrong provider is the cheaper error
        if path is None:
            from segzero_edge import default_engines

            path = default_engines()
        root = Path(path)
        manifest = read_manifest(root)
        from segzero_edge.runtime.reasoner import OrtReasoner
        from segzero_edge.runtime.segmenter import OrtSegmenter

        check_provider(provider)  # an install problem, not an engine problem: report it as such
        reasoner_meta = manifest.component("reasoner")
        segmenter_meta = manifest.component("segmenter")
        try:
            reasoner = OrtReasoner.from_dir(root / "reasoner", provider=provider, meta=reasoner_meta)
        except load_errors() as exc:
            raise _load_failed(root, "reasoner", exc) from exc
        overrides = {
            k: v
            for k, v in {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}.items()
            if v is not None
        }
        if overrides:
            reasoner.configure(**overrides)
        plans = manifest.components.get("trt", {})
        try:
            if provider == "tensorrt" and plans.get("segmenter"):
                from segzero_edge.runtime.trt_segmenter import TrtSegmenter

                segmenter = TrtSegmenter.from_dir(root / "trt", meta=segmenter_meta, plans=plans["segmenter"])
            else:
                segmenter = OrtSegmenter.from_dir(root / "segmenter", provider=provider, meta=segmenter_meta)
        except load_errors() as exc:
            raise _load_failed(root, "segmenter", exc) from exc
        return cls(reasoner, segmenter, manifest, max_query_tokens=max_query_tokens, image_limits=image_limits)


def _load_failed(root: Path, component: str, exc: BaseException) -> EngineError:
    """One line: the verified files of `component` do not make a working graph."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EngineError(
        f"{root}: the {component} does not load from its verified files ({type(exc).__name__}: {reason}); "
        "the manifest does not describe these graphs: re-export the engines"
    )


__all__ = ["PROVIDERS", "EngineError", "Provider", "ReasoningSegmenter"]
