"""numpy M-RoPE position ids vs transformers' Qwen2_5_VLModel.get_rope_index and generate()."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from segzero_edge.graphs.qwen_rope import (  # noqa: E402
    decode_position_ids,
    decode_position_ids_from_deltas,
    rope_index,
)


@pytest.fixture(scope="module")
def model(tiny_models):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models.reasoner).eval()


@pytest.fixture(scope="module")
def processor(tiny_models):
    from segzero_edge.models.processor import load_processor

    return load_processor(tiny_models.reasoner)


def _text(processor, query: str, n_images: int) -> str:
    content = [{"type": "image"}] * n_images + [{"type": "text", "text": query}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def _batch(processor, prompts: list[tuple[str, list[tuple[int, int]]]], padding_side: str = "left"):
    """prompts: (query, [(W, H) of each image]) -> processor outputs as numpy."""
    texts = [_text(processor, q, len(sizes)) for q, sizes in prompts]
    images = [Image.new("RGB", wh, (i * 40, 90, 200)) for _, sizes in prompts for i, wh in enumerate(sizes)]
    processor.tokenizer.padding_side = padding_side
    return processor(text=texts, images=images or None, padding=True, return_tensors="np")


def _hf_rope(model, inputs, use_mask: bool = True):
    kwargs = {
        "input_ids": torch.from_numpy(inputs["input_ids"]),
        "mm_token_type_ids": torch.from_numpy(inputs["mm_token_type_ids"]),
        "attention_mask": torch.from_numpy(inputs["attention_mask"]) if use_mask else None,
    }
    if "image_grid_thw" in inputs:
        kwargs["image_grid_thw"] = torch.from_numpy(inputs["image_grid_thw"])
    pos, deltas = model.model.get_rope_index(**kwargs)
    return pos.numpy(), deltas.numpy()


def _ours(model, inputs, use_mask: bool = True):
    return rope_index(
        inputs["input_ids"],
        inputs.get("image_grid_thw"),
        inputs["attention_mask"] if use_mask else None,
        image_token_id=model.config.image_token_id,
        spatial_merge_size=model.config.vision_config.spatial_merge_size,
    )


def _assert_same(ours, ref):
    assert ours[0].dtype == np.int64 and ours[1].dtype == np.int64
    assert ours[0].shape == ref[0].shape and ours[1].shape == ref[1].shape
    np.testing.assert_array_equal(ours[0], ref[0])
    np.testing.assert_array_equal(ours[1], ref[1])


def test_text_only(model, processor):
    inputs = _batch(processor, [("what is this", [])])
    inputs["mm_token_type_ids"] = np.zeros_like(inputs["input_ids"])
    pos, deltas = _ours(model, inputs)
    _assert_same((pos, deltas), _hf_rope(model, inputs))
    s = inputs["input_ids"].shape[1]
    np.testing.assert_array_equal(pos, np.broadcast_to(np.arange(s), (3, 1, s)))
    assert deltas[0, 0] == 0


@pytest.mark.parametrize("size", [(840, 840), (84, 56), (644, 476), (448, 448), (28, 1400)])
def test_one_image_at_various_grids(model, processor, size):
    inputs = _batch(processor, [("the thing I could cut bread with", [size])])
    ours = _ours(model, inputs)
    _assert_same(ours, _hf_rope(model, inputs))
    _assert_same(_ours(model, inputs, use_mask=False), _hf_rope(model, inputs, use_mask=False))
    t, h, w = inputs["image_grid_thw"][0]
    n_valid = inputs["input_ids"].shape[1]
    assert ours[1][0, 0] == (n_valid - t * h * w // 4) + max(h, w) // 2 - n_valid  # image block shrinks positions


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_padded_batch_with_several_images(model, processor, padding_side):
    inputs = _batch(
        processor,
        [
            ("a long question about the small object on the left side of the table", [(84, 56)]),
            ("two", [(112, 168), (56, 56)]),  # two images in one prompt
            ("no image at all in this row", []),
            ("big", [(840, 840)]),
        ],
        padding_side=padding_side,
    )
    assert (inputs["attention_mask"] == 0).any(), "the batch should contain padding"
    _assert_same(_ours(model, inputs), _hf_rope(model, inputs))


def test_video_spacing_matches_qwen2_5(model):
    cfg = model.config
    ids = np.array([[5, 6, cfg.vision_start_token_id] + [cfg.video_token_id] * 32 + [cfg.vision_end_token_id, 7, 8]])
    types = (ids == cfg.video_token_id).astype(np.int64) * 2
    grid = np.array([[2, 8, 8]])
    for seconds in (None, np.array([0.7], dtype=np.float32)):
        ref = model.model.get_rope_index(
            torch.from_numpy(ids), torch.from_numpy(types), video_grid_thw=torch.from_numpy(grid),
            second_per_grid_ts=None if seconds is None else torch.from_numpy(seconds),
        )
        ours = rope_index(
            ids, None, None, image_token_id=cfg.image_token_id, video_token_id=cfg.video_token_id,
            video_grid_thw=grid, second_per_grid_ts=seconds, tokens_per_second=cfg.vision_config.tokens_per_second,
        )
        _assert_same(ours, (ref[0].numpy(), ref[1].numpy()))


def test_decode_positions_match_generate(model, processor):
    """Capture the position ids generate() feeds the model at prefill and each decode step."""
    inputs = _batch(processor, [("find the knife on the table please", [(84, 56)]), ("cup", [(112, 112)])])
    seen: list[np.ndarray] = []

    def hook(_module, _args, kwargs):
        seen.append(kwargs["position_ids"].numpy().copy())

    handle = model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(
                **{k: torch.from_numpy(v) for k, v in inputs.items()},
                max_new_tokens=4, min_new_tokens=4, do_sample=False,
            )
    finally:
        handle.remove()
    assert len(seen) == 4
    pos, deltas = _ours(model, inputs)
    assert seen[0].shape[0] == 4  # generate prepends the text positions used for the causal mask
    np.testing.assert_array_equal(seen[0][1:], pos)
    current = pos
    n_valid = inputs["attention_mask"].sum(axis=1)
    for step, got in enumerate(seen[1:]):
        current = decode_position_ids(current)
        np.testing.assert_array_equal(got[1:], current)
        np.testing.assert_array_equal(current, decode_position_ids_from_deltas(deltas, n_valid + step))


def test_mismatched_grid_raises(model):
    cfg = model.config
    ids = np.array([[1, cfg.image_token_id, cfg.image_token_id, 2]])
    with pytest.raises(ValueError, match="needs 6"):
        rope_index(ids, np.array([[1, 4, 6]]), image_token_id=cfg.image_token_id)
    with pytest.raises(ValueError, match="more image token runs"):
        rope_index(ids, None, image_token_id=cfg.image_token_id)
    with pytest.raises(ValueError, match="more rows"):
        rope_index(ids, np.array([[1, 4, 2], [1, 2, 2]]), image_token_id=cfg.image_token_id)
