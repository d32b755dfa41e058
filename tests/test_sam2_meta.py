"""Meta SAM2 checkpoints → transformers `Sam2Model` (`segzero_edge.models.sam2_meta`).

- Always: the key layouts of all eight released checkpoints (generated from Meta's code,
  `fixtures/make_sam2_meta_layouts.py`) convert to the right config and fill `Sam2Model`
  exactly; a random hiera-tiny checkpoint file (.pt and .safetensors) loads with every
  tensor where it belongs; a tiny Meta-layout file goes through `export` + verify + the
  runtime; damaged or foreign files fail with one clear line.
- With Meta's `sam2` package installed (never a dependency): numeric parity of the
  converted model with Meta's own forward (image features, mask logits, IoU).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from segzero_edge.models import sam2_meta  # noqa: E402
from segzero_edge.models.sam2_meta import (  # noqa: E402
    HIERA_SIZES,
    HieraSize,
    MetaCheckpointError,
    convert_state_dict,
    meta_key_for,
    read_checkpoint,
    video_only,
)

FIXTURE = Path(__file__).parent / "fixtures" / "sam2_meta_layouts.json.gz"

#: What Meta's yaml files say about each trunk (the facts shapes cannot show).
RELEASED = {
    "tiny": ([1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], [1, 2, 4, 8], [96, 192, 384, 768]),
    "small": ([1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], [1, 2, 4, 8], [96, 192, 384, 768]),
    "base_plus": ([2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], [2, 4, 8, 16], [112, 224, 448, 896]),
    "large": ([2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], [2, 4, 8, 16], [144, 288, 576, 1152]),
}


@cache
def layouts() -> dict[str, dict[str, list[int]]]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        return json.load(f)


def shapes_only(layout: dict[str, list[int]]) -> dict:
    """Zero-cost tensors of the layout's shapes (expanded scalars: hiera-l is 224M weights)."""
    return {k: torch.zeros(()).expand(shape) for k, shape in layout.items()}


def random_tensors(layout: dict[str, list[int]], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in layout.items()}


# -- the released layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(json.loads(gzip.decompress(FIXTURE.read_bytes()))))
def test_released_layouts_convert_to_the_right_config_and_fill_every_tensor(name):
    from transformers import Sam2Model

    layout = layouts()[name]
    conversion = convert_state_dict(shapes_only(layout))
    size = name.split("hiera_")[1]
    blocks, global_blocks, windows, heads, dims = RELEASED[size]
    backbone = conversion.config.vision_config.backbone_config
    assert conversion.size.name == size
    assert backbone.blocks_per_stage == blocks and backbone.global_attention_blocks == global_blocks
    assert backbone.window_size_per_stage == windows and backbone.num_attention_heads_per_stage == heads
    assert backbone.embed_dim_per_stage == dims
    assert conversion.config.vision_config.backbone_channel_list == dims[::-1]
    assert conversion.config.mask_decoder_config.num_attention_heads == 8
    assert conversion.config.prompt_encoder_config.image_size == 1024
    # exactly the video-memory tensors are dropped; sam2.1 has three more of them
    assert set(conversion.dropped) == {k for k in layout if video_only(k)}
    video_roots = {k.split(".")[0] for k in conversion.dropped}
    expected_roots = {"memory_attention", "memory_encoder", "mask_downsample", "obj_ptr_proj", "maskmem_tpos_enc",
                      "no_mem_pos_enc", "no_obj_ptr"}
    if name.startswith("sam2.1"):
        expected_roots |= {"obj_ptr_tpos_proj", "no_obj_embed_spatial"}
    assert video_roots == expected_roots
    # every image-model tensor is used: the 4 point embeddings become one, the Fourier matrix two
    assert len(conversion.state_dict) == len(layout) - len(conversion.dropped) - 4 + 1 + 1
    with torch.device("meta"):
        model = Sam2Model(conversion.config)
    result = model.load_state_dict(conversion.state_dict, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_every_transformers_key_names_the_meta_key_that_fills_it():
    layout = layouts()["sam2.1_hiera_tiny"]
    conversion = convert_state_dict(shapes_only(layout))
    for hf_key in conversion.state_dict:
        meta_key = meta_key_for(hf_key)
        assert meta_key in layout or meta_key == "sam_prompt_encoder.point_embeddings.N.weight", hf_key


@pytest.fixture
def hiera_tiny_file(tmp_path_factory):
    """(path, tensors): a random checkpoint in the layout of sam2.1_hiera_tiny.pt, saved as Meta saves it."""
    tensors = random_tensors(layouts()["sam2.1_hiera_tiny"])
    path = tmp_path_factory.mktemp("meta") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tensors}, path)
    return path, tensors


def assert_loaded_from(model, tensors):
    """Each tensor of the converted model is exactly the Meta tensor the mapping names."""
    for hf_key, value in model.state_dict().items():
        if hf_key == "prompt_encoder.point_embed.weight":
            source = torch.cat([tensors[f"sam_prompt_encoder.point_embeddings.{i}.weight"] for i in range(4)])
        else:
            source = tensors[meta_key_for(hf_key)]
        assert torch.equal(value, source), hf_key


def test_a_hiera_tiny_checkpoint_file_loads_strictly_with_every_tensor_in_place(hiera_tiny_file):
    from segzero_edge.models.segmenter import load_sam2

    path, tensors = hiera_tiny_file
    model = load_sam2(path)
    assert not model.training and model.config.vision_config.backbone_config.blocks_per_stage == [1, 2, 7, 2]
    assert_loaded_from(model, tensors)
    image_model = sum(v.numel() for k, v in tensors.items() if not video_only(k))
    second_copy = tensors["sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].numel()
    assert sum(v.numel() for v in model.state_dict().values()) == image_model + second_copy


# -- a tiny Meta-layout checkpoint through export, verify and the runtime --------------------------

#: A narrow Hiera (the tiny test segmenter's trunk), registered as a fifth "released" trunk
#: for the tests that need a checkpoint small enough to export in seconds.
TINY_TRUNK = HieraSize("test-tiny", 16, (1, 1, 2, 1), 1, (8, 4, 14, 7), (3,), (7, 7))
#: The tiny segmenter with SAM2's head counts (Hiera doubles its heads per stage; the mask
#: decoder has 8), the two facts a Meta checkpoint's shapes cannot tell.
TINY_OVERRIDES = {"backbone_config": {"num_attention_heads_per_stage": [1, 2, 4, 8]},
                  "mask_decoder_config": {"num_attention_heads": 8}}


@pytest.fixture
def tiny_trunk(monkeypatch):
    monkeypatch.setattr(sam2_meta, "HIERA_SIZES", (*HIERA_SIZES, TINY_TRUNK))


def to_meta_layout(hf_state: dict) -> dict:
    """A transformers SAM2 state dict in Meta's layout (the mapping run backwards), with
    Meta's small video-memory tensors added, as a real checkpoint has them."""
    out = {}
    for key, value in hf_state.items():
        if key == "prompt_encoder.point_embed.weight":
            out.update({f"sam_prompt_encoder.point_embeddings.{i}.weight": row[None].clone() for i, row in enumerate(value)})
        else:
            out[meta_key_for(key)] = value.clone()  # the two Fourier copies are equal: one Meta key
    out.update({k: torch.zeros(shape) for k, shape in layouts()["sam2.1_hiera_tiny"].items()
                if video_only(k) and np.prod(shape) < 100_000})
    return out


@pytest.fixture(scope="module")
def tiny_meta(tmp_path_factory):
    """(HF dir, Meta-layout .pt, .safetensors) of one tiny random SAM2."""
    from safetensors.torch import save_file
    from transformers import Sam2Model

    from segzero_edge.testing.tiny import build_tiny_segmenter

    root = tmp_path_factory.mktemp("tiny_meta")
    hf_dir = build_tiny_segmenter(root / "hf", seed=5, **TINY_OVERRIDES)
    meta = to_meta_layout(Sam2Model.from_pretrained(hf_dir).state_dict())
    torch.save({"model": meta}, root / "tiny.pt")
    save_file(meta, root / "tiny.safetensors")
    return hf_dir, root / "tiny.pt", root / "tiny.safetensors"


def test_a_meta_layout_file_loads_the_exact_model(tiny_meta, tiny_trunk):
    from transformers import Sam2Model

    from segzero_edge.models.segmenter import TorchSegmenter

    hf_dir, pt, safetensors = tiny_meta
    reference = Sam2Model.from_pretrained(hf_dir).state_dict()
    for path in (pt, safetensors):
        segmenter = TorchSegmenter.from_pretrained(path)
        loaded = segmenter.model.state_dict()
        assert loaded.keys() == reference.keys()
        assert all(torch.equal(loaded[k], reference[k]) for k in reference), path.name
        assert segmenter.model.config.mask_decoder_config.num_attention_heads == 8


@pytest.fixture
def fake_reasoner_export(monkeypatch):
    """The reasoner exporter replaced by one that writes a stub (the segmenter is real)."""
    import segzero_edge.export.reasoner as reasoner_mod
    import segzero_edge.export.segmenter as segmenter_mod

    calls = []

    def export_reasoner(src, out_dir, **kwargs):
        calls.append("reasoner")
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "reasoner.bin").write_bytes(b"x")
        return {"precision": "fp32"}

    real_segmenter = segmenter_mod.export_segmenter

    def export_segmenter(*args, **kwargs):
        calls.append("segmenter")
        return real_segmenter(*args, **kwargs)

    monkeypatch.setattr(reasoner_mod, "export_reasoner", export_reasoner)
    monkeypatch.setattr(segmenter_mod, "export_segmenter", export_segmenter)
    return calls


def test_export_takes_a_meta_checkpoint_and_the_engine_verifies(tiny_meta, tiny_trunk, fake_reasoner_export, tmp_path):
    from segzero_edge.cli import main
    from segzero_edge.export.verify_segmenter import THRESHOLDS, verify_segmenter
    from segzero_edge.models.segmenter import TorchSegmenter
    from segzero_edge.runtime.segmenter import OrtSegmenter

    _, pt, _ = tiny_meta
    out = tmp_path / "engines"
    assert main(["export", "--reasoner", "r", "--segmenter", str(pt), "--out", str(out)]) == 0
    assert fake_reasoner_export == ["reasoner", "segmenter"]
    manifest = json.loads((out / "manifest.json").read_text())  # the stub reasoner is no full component
    assert manifest["sources"]["segmenter"] == str(pt)
    assert manifest["sources"]["segmenter_sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest()
    component = manifest["components"]["segmenter"]
    assert component["model"]["backbone_blocks"] == [1, 1, 2, 1]
    runtime = OrtSegmenter.from_dir(out / "segmenter", meta=component)
    # `verify`'s segmenter stage: the graphs against the reference loaded from the .pt again
    report = verify_segmenter(TorchSegmenter.from_pretrained(pt), runtime, n_images=1, n_prompts=2)
    assert report.passed(THRESHOLDS["fp32"]), report.summary()
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    masks, scores = runtime.decode(runtime.encode(image), [10, 20, 90, 80], [[40, 50], [60, 40]])
    assert masks.shape == (3, 96, 128) and masks.dtype == bool and np.isfinite(scores).all()


# -- what is refused, in one line ----------------------------------------------------------------


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(MetaCheckpointError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def tiny_shapes(**changes) -> dict:
    tensors = shapes_only(layouts()["sam2.1_hiera_tiny"])
    for key, value in changes.items():
        if value is None:
            del tensors[key]
        else:
            tensors[key] = value
    return tensors


def test_unknown_missing_and_misshapen_keys_are_named():
    unknown = tiny_shapes(**{"sam_mask_decoder.extra_head.weight": torch.zeros(4)})
    assert "unexpected keys" in (msg := one_line_error(convert_state_dict, unknown)) and "extra_head" in msg
    missing = tiny_shapes(**{"sam_mask_decoder.transformer.layers.1.norm4.bias": None})
    assert "missing keys: sam_mask_decoder.transformer.layers.1.norm4.bias" in one_line_error(convert_state_dict, missing)
    no_point = tiny_shapes(**{"sam_prompt_encoder.point_embeddings.2.weight": None})
    assert "sam_prompt_encoder.point_embeddings.2.weight" in one_line_error(convert_state_dict, no_point)
    shape = tiny_shapes(**{"sam_mask_decoder.conv_s0.weight": torch.zeros(16, 256, 1, 1)})
    msg = one_line_error(convert_state_dict, shape)
    assert "sam_mask_decoder.conv_s0.weight [16, 256, 1, 1] (expected [32, 256, 1, 1])" in msg


def test_an_unknown_hiera_layout_is_refused_with_what_was_found():
    eleven = {k: v for k, v in tiny_shapes().items() if not k.startswith("image_encoder.trunk.blocks.11.")}
    msg = one_line_error(convert_state_dict, eleven)
    assert "unknown Hiera layout (embed dim 96, blocks per stage [1, 2, 7, 1]" in msg and "tiny: 96, [1, 2, 7, 2]" in msg
    window = tiny_shapes(**{"image_encoder.trunk.pos_embed_window": torch.zeros(1, 96, 7, 7)})
    assert "hiera-tiny trunk with unexpected positional tables" in one_line_error(convert_state_dict, window)


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_files_that_are_not_readable_meta_checkpoints(tmp_path):
    from safetensors.torch import save_file

    assert "no such file" in one_line_error(read_checkpoint, tmp_path / "missing.pt")
    assert "is a directory" in one_line_error(read_checkpoint, tmp_path)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    assert "truncated or corrupted" in one_line_error(read_checkpoint, tmp_path / "text.pt")
    good = {"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.ones(4), "sam_mask_decoder.x": torch.ones(2)}}
    torch.save(good, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in one_line_error(read_checkpoint, tmp_path / "cut.pt")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": ")
    assert "truncated or corrupted" in one_line_error(read_checkpoint, tmp_path / "cut.safetensors")
    torch.save({"model": _Payload()}, tmp_path / "objects.pt")
    assert "Python objects besides tensors" in one_line_error(read_checkpoint, tmp_path / "objects.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    assert "not a SAM2 checkpoint" in one_line_error(read_checkpoint, tmp_path / "list.pt")
    torch.save({"state_dict": {"backbone.conv.weight": torch.ones(2)}}, tmp_path / "other.pt")
    assert "not a SAM2 checkpoint: expected" in one_line_error(read_checkpoint, tmp_path / "other.pt")
    torch.save({"backbone.conv.weight": torch.ones(2)}, tmp_path / "other2.pt")
    assert "not a SAM2 checkpoint in Meta's layout" in one_line_error(read_checkpoint, tmp_path / "other2.pt")
    save_file({"vision_encoder.backbone.pos_embed": torch.ones(2)}, tmp_path / "hf.safetensors")
    assert "transformers' layout" in one_line_error(read_checkpoint, tmp_path / "hf.safetensors")
    nan = {"model": {**good["model"], "sam_mask_decoder.x": torch.tensor([1.0, float("nan")])}}
    torch.save(nan, tmp_path / "nan.pt")
    assert "non-finite values in sam_mask_decoder.x" in one_line_error(read_checkpoint, tmp_path / "nan.pt")


def test_export_refuses_a_bad_checkpoint_file_before_any_model_work(fake_reasoner_export, tmp_path, capsys):
    from segzero_edge.cli import main
    from segzero_edge.exit_codes import ExitCode

    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    for source, reason in ((tmp_path / "missing.pt", "no such file"), (tmp_path / "cut.pt", "truncated or corrupted")):
        code = main(["export", "--reasoner", "r", "--segmenter", str(source), "--out", str(tmp_path / "e")])
        err = capsys.readouterr().err
        assert code == ExitCode.USAGE_ERROR and reason in err and len(err.strip().splitlines()) == 1
    assert fake_reasoner_export == [] and not (tmp_path / "e").exists()
