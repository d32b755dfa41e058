"""The numpy SAM2 pre/post-processing against torch's reference ops, and the PyTorch reference
segmenter's contract (shapes, Seg-Zero prompt semantics, clipping, degenerate boxes, errors)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from protocols import assert_segmenter  # noqa: E402
from segmenter_helpers import image, torch_segmenter  # noqa: E402

from segzero_edge.graphs.sam_preprocess import (  # noqa: E402
    masks_from_logits,
    preprocess_image,
    prompt_arrays,
    upsample_logits,
)
from segzero_edge.graphs.segmenter_io import IMAGE_MEAN, IMAGE_STD  # noqa: E402


def _meta_sam2_preprocess(img: np.ndarray) -> np.ndarray:
    """Meta's SAM2Transforms on a float tensor: ToTensor → Resize((1024, 1024)) (torchvision
    calls F.interpolate(bilinear, antialias=True) for tensors) → Normalize(ImageNet)."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(1024, 1024), mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(IMAGE_MEAN)[:, None, None]) / torch.tensor(IMAGE_STD)[:, None, None]
    return x.numpy()


@pytest.mark.parametrize("size", [(480, 640), (1024, 1024), (1500, 700), (37, 2000), (300, 301), (1, 1)])
def test_preprocess_matches_sam2_transforms(size):
    img = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    ours = preprocess_image(img)
    assert ours.shape == (1, 3, 1024, 1024) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _meta_sam2_preprocess(img), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(480, 640), (100, 50), (256, 256), (1080, 1920), (1, 1), (333, 517)])
def test_upsample_matches_post_process_masks(size):
    logits = np.random.default_rng(0).normal(0, 5, (3, 256, 256)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(logits)[None], size=size, mode="bilinear", align_corners=False)[
        0
    ].numpy()
    ours = upsample_logits(logits, *size)
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.abs(logits).max(), rtol=0)
    np.testing.assert_array_equal(masks_from_logits(logits, *size), ref > 0)


def test_prompt_arrays_scale_and_order_like_transformers():
    from transformers.models.sam2.processing_sam2 import Sam2Processor

    coords, labels = prompt_arrays([10, 20, 300, 400], [[50, 60], [70, 80]], height=480, width=640)
    expected_xy = Sam2Processor._normalize_coordinates(
        None, 1024, torch.tensor([[50.0, 60.0], [70.0, 80.0], [10.0, 20.0], [300.0, 400.0]]), (480, 640)
    ).numpy()
    assert coords.shape == (1, 5, 2) and coords.dtype == np.float32
    np.testing.assert_allclose(coords[0, :4], expected_xy, rtol=1e-6)
    np.testing.assert_array_equal(coords[0, 4], [0.0, 0.0])  # padding point
    np.testing.assert_array_equal(labels, [[1, 1, 2, 3, -1]])


def test_prompt_arrays_clip_and_order_corners():
    coords, _ = prompt_arrays([700, -5, -20, 900], [[-3, 10], [5000, 479]], height=480, width=640)
    xy = coords[0] / np.array([1024 / 640, 1024 / 480], dtype=np.float32)
    np.testing.assert_allclose(xy[:4], [[0, 10], [639, 479], [0, 0], [639, 479]], atol=1e-3)


@pytest.mark.parametrize(
    ("box", "points", "match"),
    [
        ([1, 2, 3], [[1, 1], [2, 2]], "box must be 4 numbers"),
        ([[1, 2], [3, 4]], [[1, 1]], "box must be 4 numbers"),
        ("0 0 5 5", [[1, 1]], "box must be 4 numbers"),
        ([0, 0, float("nan"), 5], [[1, 1]], "non-finite"),
        ([0, 0, 5, 5], [[1, 1, 1]], "points must be"),
        ([0, 0, 5, 5], [1, 2], "points must be"),
        ([0, 0, 5, 5], [[1, float("inf")]], "non-finite"),
    ],
)
def test_bad_prompts_raise_value_error(box, points, match):
    with pytest.raises(ValueError, match=match):
        prompt_arrays(box, points, 100, 100)
    seg = torch_segmenter()
    emb = seg.encode(image(64, 64))
    with pytest.raises(ValueError, match=match):
        seg.decode(emb, box, points)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32), [[1]]],
)
def test_bad_images_raise_value_error(bad):
    with pytest.raises(ValueError, match="image must be"):
        torch_segmenter().encode(bad)


def test_decode_contract_and_reference_forward():
    seg = torch_segmenter()
    img = image(300, 500, seed=1)
    box, points = [50, 40, 400, 260], [[120, 100], [300, 200]]
    masks, scores = assert_segmenter(seg, img, box, points)
    assert masks.shape == (3, 300, 500) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32
    # The same call spelled out against transformers, as Sam2Processor + post_process_masks would.
    model = seg.model
    with torch.no_grad():
        out = model(
            pixel_values=torch.from_numpy(preprocess_image(img)),
            input_points=torch.tensor([[[[120.0, 100.0], [300.0, 200.0]]]])
            * torch.tensor([1024 / 500, 1024 / 300]),
            input_labels=torch.tensor([[[1, 1]]]),
            input_boxes=torch.tensor([[[50.0, 40.0, 400.0, 260.0]]])
            * torch.tensor([1024 / 500, 1024 / 300] * 2),
            multimask_output=True,
        )
    ref = F.interpolate(out.pred_masks[0], (300, 500), mode="bilinear", align_corners=False)[0] > 0
    np.testing.assert_allclose(scores, out.iou_scores[0, 0].numpy(), atol=1e-5)
    assert (masks != ref.numpy()).mean() < 1e-4  # only pixels whose logit is ~0 may differ
    assert 0 < masks.mean() < 1  # the tiny model's masks are neither empty nor full


def test_box_outside_image_is_clipped():
    seg = torch_segmenter()
    emb = seg.encode(image(200, 300, seed=2))
    outside, _ = seg.decode_low_res(emb, [-50, -10, 900, 150], [[20, 30], [400, 100]])
    inside, _ = seg.decode_low_res(emb, [0, 0, 299, 150], [[20, 30], [299, 100]])
    np.testing.assert_array_equal(outside, inside)


def test_degenerate_box_is_kept_as_a_box():
    seg = torch_segmenter()
    emb = seg.encode(image(200, 300, seed=3))
    masks, scores = seg.decode(emb, [100, 50, 100, 120], [[100, 60], [100, 110]])  # zero width
    assert masks.shape == (3, 200, 300) and np.isfinite(scores).all()
    # Kept as a box: its two corners are embedded (a wider box around the same points differs).
    logits_box, _ = seg.decode_low_res(emb, [100, 50, 100, 120], [[100, 60], [100, 110]])
    logits_wide, _ = seg.decode_low_res(emb, [60, 50, 140, 120], [[100, 60], [100, 110]])
    assert not np.allclose(logits_box, logits_wide)


def test_set_image_then_segment_equals_encode_decode():
    seg = torch_segmenter()
    img = image(120, 90, seed=4)
    with pytest.raises(RuntimeError, match="set_image"):
        type(seg)(seg.model).segment([0, 0, 5, 5], [[1, 1], [2, 2]])
    seg.set_image(img)
    masks, scores = seg.segment([10, 10, 80, 100], [[20, 30], [50, 60]])
    masks2, scores2 = seg.decode(seg.encode(img), [10, 10, 80, 100], [[20, 30], [50, 60]])
    np.testing.assert_array_equal(masks, masks2)
    np.testing.assert_array_equal(scores, scores2)
