"""The segmenter graphs' contract, shared by the exporter and the runtimes (torch-free).

Two ONNX graphs, SAM2's split for "encode once, prompt many":

    encoder.onnx  pixel_values [1,3,1024,1024] float32 (preprocessed, see `sam_preprocess`)
                  → high_res_feats_0 [1,C/8,256,256], high_res_feats_1 [1,C/4,128,128],
                    image_embeddings [1,C,64,64]   (no-memory embedding already added, as
                    `Sam2Model.get_image_embeddings` returns them)
    decoder.onnx  image_embeddings, high_res_feats_0, high_res_feats_1,
                  point_coords [1,N,2] float32 (1024 space), point_labels [1,N] float32,
                  mask_input [1,1,256,256] float32, has_mask_input [1] float32
                  → low_res_masks [1,3,256,256] float32 logits, iou_predictions [1,3] float32

Labels follow SAM: 1 positive point, 0 negative point, 2/3 the top-left/bottom-right box
corners, -1 a padding point ("not a point"). N is dynamic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPONENT = "segmenter"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
ENCODER_PLAN = "segmenter_encoder.plan"
DECODER_PLAN = "segmenter_decoder.plan"

IMAGE_SIZE = 1024  # SAM2 resizes every image to 1024×1024 without keeping the aspect ratio
LOW_RES_SIZE = 256  # decoder mask logits are 1/4 of the input resolution
NUM_MULTIMASK = 3
MASK_THRESHOLD = 0.0  # logits > 0 are foreground
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet, as SAM2Transforms / Sam2ImageProcessor
IMAGE_STD = (0.229, 0.224, 0.225)

# Point labels.
LABEL_PAD = -1.0
LABEL_NEGATIVE = 0.0
LABEL_POSITIVE = 1.0
LABEL_BOX_TOP_LEFT = 2.0
LABEL_BOX_BOTTOM_RIGHT = 3.0

# Graph I/O names (the exporter writes them, the runtimes check them on load).
PIXEL_VALUES = "pixel_values"
HIGH_RES_0 = "high_res_feats_0"
HIGH_RES_1 = "high_res_feats_1"
IMAGE_EMBEDDINGS = "image_embeddings"
POINT_COORDS = "point_coords"
POINT_LABELS = "point_labels"
MASK_INPUT = "mask_input"
HAS_MASK_INPUT = "has_mask_input"
LOW_RES_MASKS = "low_res_masks"
IOU_PREDICTIONS = "iou_predictions"

ENCODER_INPUTS = (PIXEL_VALUES,)
ENCODER_OUTPUTS = (HIGH_RES_0, HIGH_RES_1, IMAGE_EMBEDDINGS)
DECODER_INPUTS = (
    IMAGE_EMBEDDINGS,
    HIGH_RES_0,
    HIGH_RES_1,
    POINT_COORDS,
    POINT_LABELS,
    MASK_INPUT,
    HAS_MASK_INPUT,
)
DECODER_OUTPUTS = (LOW_RES_MASKS, IOU_PREDICTIONS)

PRECISIONS = ("fp32", "fp16", "int8")
#: Decoder prompts may have 1..MAX_POINTS points (Seg-Zero's prompt is 2 points + 2 corners + 1 pad).
MAX_POINTS = 64


@dataclass(frozen=True)
class SamEmbedding:
    """One encoded image: the encoder outputs plus the original size needed to map prompts
    into 1024 space and masks back to H×W. `features` maps ENCODER_OUTPUTS names to arrays
    (numpy in the runtimes, torch tensors in the reference)."""

    features: dict[str, Any]
    height: int
    width: int


def check_input_size(image_size: int, low_res_size: int | None = None) -> int:
    """The encoder input side a graph pair may use: SAM2's 1024, or a smaller square (the
    shipped tiny segmenter runs at 384) whose Hiera/FPN strides divide it. The decoder's
    low-res logits are always a quarter of it. Returns `image_size`; ValueError otherwise."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 64 or image_size % 32:
        raise ValueError(f"segmenter image_size must be a multiple of 32 and >= 64, got {image_size!r}")
    if low_res_size is not None and low_res_size * 4 != image_size:
        raise ValueError(
            f"segmenter low_res_size must be image_size / 4 = {image_size // 4}, got {low_res_size!r}"
        )
    return image_size


def default_meta(image_size: int = IMAGE_SIZE) -> dict[str, Any]:
    """The preprocessing and I/O constants every exported segmenter shares at encoder input
    `image_size` (SAM2's 1024 by default); the exporter extends this with precisions and the
    model summary."""
    check_input_size(image_size)
    return {
        "image_size": image_size,
        "low_res_size": image_size // 4,
        "num_multimask_outputs": NUM_MULTIMASK,
        "mask_threshold": MASK_THRESHOLD,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "resize": "bilinear, antialiased, to image_size x image_size (aspect ratio not kept); rescale 1/255",
        "coords": "x * image_size / W, y * image_size / H",
        "files": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
        "encoder_inputs": list(ENCODER_INPUTS),
        "encoder_outputs": list(ENCODER_OUTPUTS),
        "decoder_inputs": list(DECODER_INPUTS),
        "decoder_outputs": list(DECODER_OUTPUTS),
        "labels": {
            "pad": LABEL_PAD,
            "negative": LABEL_NEGATIVE,
            "positive": LABEL_POSITIVE,
            "box_top_left": LABEL_BOX_TOP_LEFT,
            "box_bottom_right": LABEL_BOX_BOTTOM_RIGHT,
        },
    }


class EncodeOnceMixin:
    """`set_image` once, then `segment(box, points)` many times: SAM2's predictor workflow,
    shared by the PyTorch reference and the runtime (both define `encode` and `decode`)."""

    _embedding: SamEmbedding | None = None

    def set_image(self, image):
        """Encode an image and keep its embedding for `segment`."""
        self._embedding = self.encode(image)  # type: ignore[attr-defined]
        return self._embedding

    def segment(self, box, points):
        """`decode` against the image given to `set_image`."""
        if self._embedding is None:
            raise RuntimeError("call set_image(image) before segment(box, points)")
        return self.decode(self._embedding, box, points)  # type: ignore[attr-defined]
