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
from segzero_edge.runtime.providers import (
    DEFAULT_SPIN,
    PROVIDERS,
    SPIN_POLICIES,
    Provider,
    SpinPolicy,
    check_provider,
    check_spin,
    load_errors,
)
from segzero_edge.stopping import RepetitionStop


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
        max_time_s: float | None = None,
        repetition_stop: RepetitionStop | None = RepetitionStop(),  # noqa: B008 - frozen dataclass
        threads: int | None = None,
        spin: SpinPolicy = DEFAULT_SPIN,
        device_id: int = 0,
        trt_fp16: bool = False,
        trt_cache_dir: str | Path | None = None,
    ) -> ReasoningSegmenter:
        """Load and verify an engine directory (the shipped default when `path` is None).

        `max_query_tokens` and `image_limits` bound what `segment` accepts (see
        `ReasoningPipeline`). `max_time_s` is each query's default wall-clock budget and
        `repetition_stop` the runaway-answer rule (None: off; `segzero_edge.stopping`).
        `threads`: intra-op threads of every session (None: one per core). `spin`: whether
        idle intra-op threads of every onnxruntime session busy-wait ("off": they sleep; "on":
        they spin, also between runs; "run": they spin only while a graph runs; README "Thread
        spinning" has the measured trade-off behind the default "off"). `device_id`: the
        GPU (cuda, tensorrt). `trt_fp16`, `trt_cache_dir`: let onnxruntime's TensorRT provider
        build fp16 engines, and keep its engines and timing cache in that folder so that the
        next start does not rebuild them (tensorrt only).

        Raises `EngineError` (one line) for a missing, altered or out-of-directory file, a
        malformed manifest, graphs the manifest does not describe, or TensorRT plans built for
        another TensorRT version or GPU; `ValueError` for an unknown provider or bad setting and
        `RuntimeError` for a provider this onnxruntime install lacks.
        """
        check_provider(provider)  # before reading any file: a wrong provider is the cheaper error
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None (one per core), got {threads!r}")
        if isinstance(device_id, bool) or not isinstance(device_id, int) or device_id < 0:
            raise ValueError(f"device_id must be a GPU index >= 0, got {device_id!r}")
        if max_time_s is not None and (isinstance(max_time_s, bool) or not max_time_s > 0):
            raise ValueError(f"max_time_s must be a positive number of seconds (None: no budget), got {max_time_s!r}")
        if provider != "tensorrt" and (trt_fp16 or trt_cache_dir is not None):
            raise ValueError(f"trt_fp16 and trt_cache_dir apply to provider='tensorrt', not {provider!r}")
        if provider == "cpu" and device_id != 0:
            raise ValueError(f"device_id={device_id} applies to provider 'cuda' or 'tensorrt', not 'cpu'")
        session_kwargs: dict[str, Any] = {"threads": threads, "spin": check_spin(spin)}
        if provider != "cpu":  # GPU settings; the CPU provider has none
            session_kwargs.update(device_id=device_id, trt_fp16=trt_fp16, trt_cache_dir=trt_cache_dir)
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
            reasoner = OrtReasoner.from_dir(root / "reasoner", provider=provider, meta=reasoner_meta, **session_kwargs)
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
                from segzero_edge.runtime.trt_engine import installed_tensorrt_and_gpu
                from segzero_edge.runtime.trt_segmenter import TrtSegmenter
                from segzero_edge.trt_plans import check_plans_match

                check_plans_match(plans, *installed_tensorrt_and_gpu(device_id), where=root)
                segmenter = TrtSegmenter.from_dir(
                    root / "trt", meta=segmenter_meta, plans=plans["segmenter"], device_id=device_id
                )
            else:
                segmenter = OrtSegmenter.from_dir(root / "segmenter", provider=provider, meta=segmenter_meta, **session_kwargs)
        except load_errors() as exc:
            raise _load_failed(root, "segmenter", exc) from exc
        return cls(
            reasoner,
            segmenter,
            manifest,
            max_query_tokens=max_query_tokens,
            image_limits=image_limits,
            max_time_s=max_time_s,
            repetition_stop=repetition_stop,
        )


def _load_failed(root: Path, component: str, exc: BaseException) -> EngineError:
    """One line: the verified files of `component` do not make a working graph."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return EngineError(
        f"{root}: the {component} does not load from its verified files ({type(exc).__name__}: {reason}); "
        "the manifest does not describe these graphs: re-export the engines"
    )


__all__ = ["PROVIDERS", "SPIN_POLICIES", "EngineError", "Provider", "ReasoningSegmenter", "SpinPolicy"]
