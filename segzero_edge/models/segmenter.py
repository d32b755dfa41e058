"""The PyTorch reference segmenter: transformers' `Sam2Model` behind the `Segmenter` protocol.

Seg-Zero's call, exactly: one box plus the reasoner's two points as positive clicks,
`multimask_output=True`, the 256² logits upsampled to the original size and thresholded
at 0; the pipeline keeps the mask with the highest predicted IoU. The numpy pre- and
post-processing is `segzero_edge.graphs.sam_preprocess`, shared with every runtime, so a
parity check compares the models, not two copies of the resize.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segzero_edge.graphs.sam_preprocess import (
    check_box,
    check_image,
    check_points,
    clip_prompt,
    preprocess_image,
    to_model_space,
)
from segzero_edge.graphs.segmenter_io import (
    ENCODER_OUTPUTS,
    MASK_THRESHOLD,
    EncodeOnceMixin,
    SamEmbedding,
    check_input_size,
)

#: Public SAM2 checkpoints in transformers format (short name → Hub id).
SAM2_HUB_IDS = {
    "sam2-hiera-tiny": "facebook/sam2-hiera-tiny",
    "sam2-hiera-small": "facebook/sam2-hiera-small",
    "sam2-hiera-base-plus": "facebook/sam2-hiera-base-plus",
    "sam2-hiera-large": "facebook/sam2-hiera-large",
    "sam2.1-hiera-tiny": "facebook/sam2.1-hiera-tiny",
    "sam2.1-hiera-small": "facebook/sam2.1-hiera-small",
    "sam2.1-hiera-base-plus": "facebook/sam2.1-hiera-base-plus",
    "sam2.1-hiera-large": "facebook/sam2.1-hiera-large",
}


def resolve_source(path_or_hub_id: str | Path) -> str:
    """A local directory as is; a short name (`sam2.1-hiera-large`) to its Hub id; else the id."""
    text = str(path_or_hub_id)
    if Path(text).expanduser().is_dir():
        return str(Path(text).expanduser())
    return SAM2_HUB_IDS.get(text, text)


def is_checkpoint_file(source: str | Path) -> bool:
    """Whether `source` names a checkpoint file (Meta's `sam2.1_hiera_tiny.pt`, or a
    .safetensors in Meta's layout) rather than a transformers folder or a Hub id: an
    existing file, or a name with a checkpoint suffix (so a missing `model.pt` is reported
    as a missing file, never looked up on a hub)."""
    from segzero_edge.models.sam2_meta import CHECKPOINT_SUFFIXES

    path = Path(str(source)).expanduser()
    return path.is_file() or (path.suffix.lower() in CHECKPOINT_SUFFIXES and not path.is_dir())


def load_sam2(source: str | Path, dtype: torch.dtype = torch.float32) -> Any:
    """A transformers `Sam2Model` in eval mode from any segmenter source: a Meta checkpoint
    file (converted, `models.sam2_meta`), a local transformers folder, a Hub id or a
    `SAM2_HUB_IDS` name. A bad checkpoint file raises `sam2_meta.MetaCheckpointError`."""
    if is_checkpoint_file(source):
        from segzero_edge.models.sam2_meta import load_meta_checkpoint

        return load_meta_checkpoint(source, dtype=dtype)
    from transformers import Sam2Model

    return Sam2Model.from_pretrained(resolve_source(source), dtype=dtype).eval()


def check_source(source: str | Path) -> None:
    """Fail early on a bad checkpoint file (read, convert, check every key and shape; no model
    is built), so that `export` refuses it before the reasoner's minutes of work. Folders and
    Hub ids are left to `from_pretrained`."""
    if is_checkpoint_file(source):
        from segzero_edge.models.sam2_meta import convert_state_dict, read_checkpoint

        convert_state_dict(read_checkpoint(source))


class TorchSegmenter(EncodeOnceMixin):
    """SAM2 in PyTorch (transformers `Sam2Model`), the reference every export is checked against.

    `encode` once per image, `decode` per prompt; `set_image` / `segment` keep the last
    embedding for you.
    """

    def __init__(self, model: Any, device: str | torch.device = "cpu") -> None:
        self.model = model.eval()
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        # SAM2 is 1024²; a smaller square (the shipped tiny segmenter: 384²) works the same way
        self.image_size = check_input_size(int(model.config.prompt_encoder_config.image_size))
        self._embedding: SamEmbedding | None = None

    @classmethod
    def from_pretrained(
        cls, path_or_hub_id: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> TorchSegmenter:
        """Load SAM2 from a Meta checkpoint file (`sam2.1_hiera_tiny.pt`), a transformers-format
        folder, a Hub id or a `SAM2_HUB_IDS` name (`load_sam2`)."""
        return cls(load_sam2(path_or_hub_id, dtype=dtype).to(device), device=device)

    # -- Segmenter protocol -------------------------------------------------------------

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> SamEmbedding:
        """RGB uint8 HxWx3 → SamEmbedding (torch tensors: the encoder outputs of `get_image_embeddings`)."""
        height, width = check_image(image)
        pixels = torch.from_numpy(preprocess_image(image, self.image_size)).to(self.device, self.dtype)
        features = self.model.get_image_embeddings(pixels)
        return SamEmbedding(
            features=dict(zip(ENCODER_OUTPUTS, features, strict=True)), height=height, width=width
        )

    def decode(
        self, embedding: SamEmbedding, box: Sequence[float], points: Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Box + positive points (original pixels) → masks [3, H, W] bool, scores [3] float32.

        The box and points are clipped into the image and the box corners ordered; a
        degenerate (zero-width or -height) box is kept as a box (`sam_preprocess.clip_prompt`).
        Wrong shapes or non-finite values raise ValueError.
        """
        logits, scores = self.decode_low_res(embedding, box, points)
        masks = F.interpolate(
            torch.from_numpy(logits)[None],
            (embedding.height, embedding.width),
            mode="bilinear",
            align_corners=False,
        )[0]
        return (masks > MASK_THRESHOLD).numpy(), scores

    @torch.no_grad()
    def decode_low_res(
        self, embedding: SamEmbedding, box: Sequence[float], points: Sequence[Sequence[float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's raw output: logits [3, S/4, S/4] float32 (S = the input size, 1024 for SAM2) and IoU scores [3] float32.

        Runs `Sam2Model.forward(input_points, input_labels, input_boxes, multimask_output=True)`,
        the transformers code path the exported decoder must reproduce.
        """
        if not isinstance(embedding, SamEmbedding):
            raise ValueError(
                f"decode needs the SamEmbedding that encode() returned, got {type(embedding).__name__}"
            )
        height, width = embedding.height, embedding.width
        clipped_box, pts = clip_prompt(check_box(box), check_points(points), height, width)
        as_tensor = lambda a: torch.from_numpy(a).to(self.device, self.dtype)  # noqa: E731
        size = self.image_size
        input_boxes = as_tensor(to_model_space(clipped_box.reshape(2, 2), height, width, size).reshape(1, 1, 4))
        input_points = input_labels = None
        if len(pts):
            input_points = as_tensor(to_model_space(pts, height, width, size)[None, None])
            input_labels = torch.ones(1, 1, len(pts), dtype=torch.int64, device=self.device)
        out = self.model(
            image_embeddings=[embedding.features[name] for name in ENCODER_OUTPUTS],
            input_points=input_points,
            input_labels=input_labels,
            input_boxes=input_boxes,
            multimask_output=True,
        )
        logits = out.pred_masks[0, 0].float().cpu().numpy()
        scores = out.iou_scores[0, 0].float().cpu().numpy()
        return logits, scores
