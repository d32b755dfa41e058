"""SAM2 on ONNX Runtime, torch-free: the `Segmenter` protocol over encoder.onnx + decoder.onnx."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.graphs import segmenter_io as io
from segzero_edge.graphs.sam_preprocess import check_image, masks_from_logits, preprocess_image, prompt_arrays
from segzero_edge.runtime.providers import SpinPolicy, check_io, create_session

_NUMERIC_KEYS = ("image_size", "low_res_size", "mask_threshold", "image_mean", "image_std")


def check_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Validate a segmenter component's metadata against what this runtime implements."""
    missing = [k for k in _NUMERIC_KEYS if k not in meta]
    if missing:
        raise ValueError(f"segmenter metadata lacks {missing}: re-export the segmenter")
    try:
        io.check_input_size(meta["image_size"], meta["low_res_size"])
    except ValueError as exc:
        raise ValueError(f"segmenter metadata: {exc}") from None
    if len(meta["image_mean"]) != 3 or len(meta["image_std"]) != 3:
        raise ValueError(
            f"image_mean/image_std must have 3 values, got {meta['image_mean']} / {meta['image_std']}"
        )
    return meta


class GraphSegmenter(io.EncodeOnceMixin):
    """The `Segmenter` protocol over any back end that runs the encoder and decoder graphs:
    numpy preprocessing, prompt encoding and mask upsampling live here once; subclasses only
    run graphs (`_run_encoder`, `_run_decoder`)."""

    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.meta = check_meta(dict(meta) if meta is not None else io.default_meta())
        self._mean = tuple(float(v) for v in self.meta["image_mean"])
        self._std = tuple(float(v) for v in self.meta["image_std"])
        self._threshold = float(self.meta["mask_threshold"])
        self._max_points = int(self.meta.get("max_points", 0)) or None
        self._embedding: io.SamEmbedding | None = None

    def _run_encoder(self, pixels: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def _run_decoder(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    # -- Segmenter protocol -------------------------------------------------------------

    def encode(self, image: np.ndarray) -> io.SamEmbedding:
        """RGB uint8 HxWx3 → SamEmbedding (numpy encoder outputs + the original size)."""
        height, width = check_image(image)
        pixels = preprocess_image(image, int(self.meta["image_size"]), self._mean, self._std)
        outputs = self._run_encoder(pixels)
        return io.SamEmbedding(
            features=dict(zip(io.ENCODER_OUTPUTS, outputs, strict=True)), height=height, width=width
        )

    def decode(
        self, embedding: io.SamEmbedding, box: Sequence[float], points: Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box + positive points (original pixels) → masks [3, H, W] bool, scores [3] float32.

        The box and points are clipped into the image and the box corners ordered; a
        degenerate (zero-width or -height) box is kept as a box (`sam_preprocess.clip_prompt`).
        Wrong shapes or non-finite values raise ValueError.
        """
        logits, scores = self.decode_low_res(embedding, box, points)
        return masks_from_logits(logits, embedding.height, embedding.width, self._threshold), scores

    def decode_low_res(
        self, embedding: io.SamEmbedding, box: Sequence[float], points: Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's raw output: logits [3, S/4, S/4] float32 (S = the metadata's image_size) and IoU scores [3] float32."""
        if not isinstance(embedding, io.SamEmbedding):
            raise ValueError(
                f"decode needs the SamEmbedding that encode() returned, got {type(embedding).__name__}"
            )
        coords, labels = prompt_arrays(
            box, points, embedding.height, embedding.width, int(self.meta["image_size"])
        )
        if self._max_points is not None and coords.shape[1] > self._max_points:
            raise ValueError(
                f"{len(points)} points + box + pad make {coords.shape[1]} prompt points; the decoder was "
                f"exported for at most {self._max_points}"
            )
        size = int(self.meta["low_res_size"])
        feeds = {
            **{name: embedding.features[name] for name in io.ENCODER_OUTPUTS},
            io.POINT_COORDS: coords,
            io.POINT_LABELS: labels,
            io.MASK_INPUT: np.zeros((1, 1, size, size), dtype=np.float32),
            io.HAS_MASK_INPUT: np.zeros((1,), dtype=np.float32),
        }
        logits, scores = self._run_decoder(feeds)
        return logits[0].astype(np.float32, copy=False), scores[0].astype(np.float32, copy=False)

    # -- convenience --------------------------------------------------------------------

    @property
    def precision(self) -> dict[str, str]:
        return dict(self.meta.get("precision", {"encoder": "fp32", "decoder": "fp32"}))


def component_meta(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(manifest, segmenter component metadata) of an engine directory (`DIR/manifest.json`
    + `DIR/segmenter/`) or of its `segmenter/` folder; every file is verified."""
    from segzero_edge.manifest import MANIFEST_NAME, EngineError, read_manifest

    path = Path(path)
    if (path / MANIFEST_NAME).is_file():
        root = path
    elif path.name == io.COMPONENT and (path.parent / MANIFEST_NAME).is_file():
        root = path.parent
    else:
        raise EngineError(
            f"{path} is not an engine directory: no {MANIFEST_NAME} there or in its parent "
            "(make one with `segzero-edge export`, or pass the graph paths directly)"
        )
    manifest = read_manifest(root)
    return manifest, manifest.component(io.COMPONENT)


def component_files(folder: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """The encoder and decoder paths a segmenter component lists, relative to `folder`."""
    from segzero_edge.manifest import EngineError

    files = meta.get("files", {})
    if "encoder" not in files or "decoder" not in files:
        raise EngineError(
            f"the segmenter metadata lists no encoder/decoder files (has {sorted(files)}): re-export"
        )
    paths = (folder / files["encoder"], folder / files["decoder"])
    for p in paths:
        if not p.is_file():
            raise EngineError(f"segmenter graph missing: {p}; re-export the segmenter")
    return paths


class OrtSegmenter(GraphSegmenter):
    """SAM2 encoder + decoder ONNX graphs on ONNX Runtime. Encode once, decode many.

    `meta` is the segmenter component metadata the exporter wrote (None: SAM2's defaults from
    `segmenter_io`); the graphs' I/O names are checked against the contract on load.
    """

    def __init__(
        self,
        encoder_path: str | Path,
        decoder_path: str | Path,
        provider: str = "cpu",
        meta: dict[str, Any] | None = None,
        threads: int | None = None,
        spin: SpinPolicy | None = None,
        **provider_options: Any,
    ) -> None:
        super().__init__(meta)
        self.provider = provider
        self.encoder = create_session(encoder_path, provider, threads=threads, spin=spin, **provider_options)
        self.decoder = create_session(decoder_path, provider, threads=threads, spin=spin, **provider_options)
        check_io(self.encoder, io.ENCODER_INPUTS, io.ENCODER_OUTPUTS, f"encoder {encoder_path}")
        check_io(self.decoder, io.DECODER_INPUTS, io.DECODER_OUTPUTS, f"decoder {decoder_path}")

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        provider: str = "cpu",
        meta: dict[str, Any] | None = None,
        threads: int | None = None,
        spin: SpinPolicy | None = None,
        **provider_options: Any,
    ) -> OrtSegmenter:
        """Open exported graphs (spin: `providers.SpinPolicy`, None: onnxruntime's default;
        provider_options: device_id, trt_fp16, trt_cache_dir).

        With `meta` (the manifest's segmenter component, the manifest already verified by the
        caller), `path` is the folder holding the files it lists. Without it, `path` is an
        engine directory or its `segmenter/` folder, and the manifest is read and verified here.
        """
        folder = Path(path)
        if meta is None:
            manifest, meta = component_meta(path)
            folder = manifest.root / io.COMPONENT
        encoder, decoder = component_files(folder, meta)
        return cls(encoder, decoder, provider=provider, meta=meta, threads=threads, spin=spin, **provider_options)

    def _run_encoder(self, pixels: np.ndarray) -> list[np.ndarray]:
        return self.encoder.run(list(io.ENCODER_OUTPUTS), {io.PIXEL_VALUES: pixels})

    def _run_decoder(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.decoder.run(list(io.DECODER_OUTPUTS), feeds)
