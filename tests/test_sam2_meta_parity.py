"""Numeric parity of a converted Meta checkpoint with Meta's own SAM2 forward.

Needs Meta's `sam2` package, which segzero-edge never depends on; its image model builds
without torchvision. Install it into the venv to run these tests:

    SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2 && pip install hydra-core iopath

A random Meta model (Meta's classes, Meta's config files) → `state_dict()` →
`convert_state_dict` → transformers `Sam2Model`; both then embed one image and decode one
box + two points the way Meta's `SAM2ImagePredictor` does (`forward_image`, the no-memory
embedding, `sam_prompt_encoder`, `sam_mask_decoder`; the predictor module itself imports
torchvision, so its few lines of glue are repeated here).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("hydra", reason="Meta's sam2 package (and hydra-core) is not installed: no parity with Meta's code")
pytest.importorskip("sam2", reason="Meta's sam2 package is not installed: no parity with Meta's code")

from test_sam2_meta import TINY_TRUNK  # noqa: E402

from segzero_edge.models import sam2_meta  # noqa: E402


def meta_model(config: str, overrides: list[str], seed: int = 0):
    """Meta's SAM2Base from one of its config files, every parameter redrawn (Meta zero-inits
    the positional tables and the no-memory embedding, which would hide mapping errors)."""
    from hydra import compose
    from hydra.utils import instantiate

    model = instantiate(compose(config_name=config, overrides=overrides).model, _recursive_=True).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in**0.5 if p.dim() > 1 else 0.5))
    return model


@torch.no_grad()
def meta_forward(model, pixels, box, points):
    """Meta's image path (SAM2ImagePredictor.set_image + _predict): features, logits, IoU."""
    backbone = model.forward_image(pixels)
    _, feats, _, sizes = model._prepare_backbone_features(backbone)
    feats[-1] = feats[-1] + model.no_mem_embed
    maps = [f.permute(1, 2, 0).reshape(1, -1, *s) for f, s in zip(feats, sizes, strict=True)]
    coords = torch.cat([box.reshape(1, 2, 2), points], dim=1)  # the predictor puts the box first
    labels = torch.tensor([[2, 3] + [1] * points.shape[1]])
    sparse, dense = model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    logits, iou, _, _ = model.sam_mask_decoder(
        image_embeddings=maps[-1], image_pe=model.sam_prompt_encoder.get_dense_pe(), sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense, multimask_output=True, repeat_image=False, high_res_features=maps[:-1],
    )
    return maps, logits[0], iou[0]


@torch.no_grad()
def converted_forward(meta, image_size, pixels, box, points):
    """The converted transformers model, called as `TorchSegmenter` calls it."""
    conversion = sam2_meta.convert_state_dict(meta.state_dict(), image_size=image_size)
    model = sam2_meta.model_from_conversion(conversion)
    maps = model.get_image_embeddings(pixels)
    out = model(image_embeddings=list(maps), input_points=points[None], input_labels=torch.ones(1, 1, points.shape[1], dtype=torch.long),
                input_boxes=box[None], multimask_output=True)
    return list(maps), out.pred_masks[0, 0], out.iou_scores[0, 0], conversion


def assert_parity(meta, size):
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 3, size, size, generator=g)
    box = torch.tensor([[0.1, 0.2, 0.8, 0.9]]) * size
    points = torch.tensor([[[0.3, 0.4], [0.6, 0.5]]]) * size
    ref_maps, ref_logits, ref_iou = meta_forward(meta, pixels, box, points)
    maps, logits, iou, conversion = converted_forward(meta, size, pixels, box, points)
    for ref, got in zip(ref_maps, maps, strict=True):
        assert ref.shape == got.shape
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=0)
    assert logits.shape == ref_logits.shape == (3, size // 4, size // 4)
    # the logits reach ~±100 with random weights: 1e-4 of their range, summed in another order
    torch.testing.assert_close(logits, ref_logits, atol=1e-4 * float(ref_logits.abs().max()), rtol=0)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=0)
    return conversion


def test_a_tiny_meta_model_matches_its_conversion(monkeypatch):
    """Meta's own classes at a narrow width (the Hiera of the tiny test segmenter, a 32-wide
    decoder): fast enough for every run where sam2 is installed."""
    monkeypatch.setattr(sam2_meta, "HIERA_SIZES", (*sam2_meta.HIERA_SIZES, TINY_TRUNK))
    overrides = [
        "++model.image_size=128",
        "model.image_encoder.trunk.embed_dim=16",
        "model.image_encoder.trunk.stages=[1,1,2,1]",
        "model.image_encoder.trunk.global_att_blocks=[3]",
        "model.image_encoder.neck.d_model=32",
        "model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
        "model.image_encoder.neck.position_encoding.num_pos_feats=32",
    ]
    conversion = assert_parity(meta_model("configs/sam2.1/sam2.1_hiera_t.yaml", overrides), 128)
    assert conversion.size is TINY_TRUNK


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/sam2.1/sam2.1_hiera_t.yaml", "configs/sam2/sam2_hiera_t.yaml"])
def test_a_hiera_tiny_meta_model_matches_its_conversion(config):
    """The released hiera-tiny layout (sam2 and sam2.1), at a 256² input to keep it minutes."""
    conversion = assert_parity(meta_model(config, ["++model.image_size=256"]), 256)
    assert conversion.size.name == "tiny"
