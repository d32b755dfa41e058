"""SAM2 on TensorRT plans: the same `Segmenter` as `OrtSegmenter`, with `TrtEngine` running the graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.graphs import segmenter_io as io
from segzero_edge.runtime.segmenter import GraphSegmenter, component_meta
from segzero_edge.runtime.trt_engine import TrtEngine

#: Engine-directory folder of the plans; the manifest's `trt` component lists them as
#: `{"segmenter": {"encoder": "segmenter_encoder.plan", "decoder": "segmenter_decoder.plan", ...}}`.
TRT_DIR = "trt"


class TrtSegmenter(GraphSegmenter):
    """SAM2 encoder + decoder TensorRT plans (built by `export.plans.build_segmenter_plans`)."""

    def __init__(
        self, encoder_plan: str | Path, decoder_plan: str | Path, meta: dict[str, Any] | None = None
    ) -> None:
        super().__init__(meta)
        self.provider = "tensorrt"
        self.encoder = TrtEngine(encoder_plan)
        self.decoder = TrtEngine(decoder_plan)
        for engine, inputs, outputs, what in (
            (self.encoder, io.ENCODER_INPUTS, io.ENCODER_OUTPUTS, encoder_plan),
            (self.decoder, io.DECODER_INPUTS, io.DECODER_OUTPUTS, decoder_plan),
        ):
            if set(engine.inputs) != set(inputs) or set(engine.outputs) != set(outputs):
                raise ValueError(
                    f"plan {what} has inputs {engine.inputs} and outputs {engine.outputs}; expected {inputs} and "
                    f"{outputs}: rebuild it from this version's ONNX export"
                )

    @classmethod
    def from_dir(
        cls, path: str | Path, meta: dict[str, Any] | None = None, plans: dict[str, Any] | None = None
    ) -> TrtSegmenter:
        """Open segmenter plans.

        With `meta` and `plans` (the manifest's segmenter component and `trt.segmenter` entry,
        the manifest already verified by the caller), `path` is the folder holding the plans.
        Without them, `path` is an engine directory whose manifest is read and verified here.
        """
        from segzero_edge.manifest import EngineError

        folder = Path(path)
        if meta is None or plans is None:
            manifest, meta = component_meta(path)
            plans = manifest.component("trt").get(io.COMPONENT)
            folder = manifest.root / TRT_DIR
        if not plans or "encoder" not in plans or "decoder" not in plans:
            raise EngineError(
                f"no segmenter encoder/decoder plans listed (got {plans!r}); export with --tensorrt on the target device"
            )
        return cls(folder / plans["encoder"], folder / plans["decoder"], meta=meta)

    def _run_encoder(self, pixels: np.ndarray) -> list[np.ndarray]:
        out = self.encoder.run({io.PIXEL_VALUES: pixels})
        return [out[name] for name in io.ENCODER_OUTPUTS]

    def _run_decoder(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.decoder.run(feeds)
        return [out[name] for name in io.DECODER_OUTPUTS]
