"""segzero_edge.testing: the project tokenizer, tiny checkpoints, and the video-free processor."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segzero_edge.testing import tokenizer as tkn

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

QUESTION_PROMPT = tkn.SEGZERO_TEMPLATE.format(question="the thing i could cut bread with")
ANSWER = '<think>The knife is left of the cup.</think>\n<answer>{"bbox": [12,340,567,839], "points_1": [100,400], "points_2": [455,700]}</answer>'
REPO = Path(__file__).resolve().parents[1]


def _image(seed: int, h: int = 840, w: int = 840) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _messages(text: str = QUESTION_PROMPT) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def processor(tiny_models):
    from segzero_edge.models.processor import load_processor

    return load_processor(tiny_models.reasoner)


@pytest.fixture(scope="module")
def reasoner(tiny_models):
    from transformers import Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models.reasoner).eval()


def _files_sha(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _module_key(key: str) -> str:
    """transformers 5.x saves Qwen2.5-VL under the Hub's legacy names (model.layers.*, visual.*)."""
    for hub, module in (("visual.", "model.visual."), ("model.", "model.language_model.")):
        if key.startswith(hub):
            return module + key[len(hub) :]
    return key


# -- import rule ---------------------------------------------------------------------------


def test_import_is_torch_free():
    code = (
        "import sys, segzero_edge.testing, segzero_edge.testing.tokenizer;"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=_env())


# -- tokenizer -----------------------------------------------------------------------------


def test_tokenizer_roundtrip_and_special_ids():
    tok = tkn.build_tokenizer()
    for text in (QUESTION_PROMPT, ANSWER, "héllo wörld\r\n\t  ünïcode ✓ 😀"):
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    ids = [tok.token_to_id(t) for t in tkn.SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "specials must be contiguous, in Qwen's order"
    assert ids[0] == tok.get_vocab_size() - len(ids), "specials come after the BPE vocabulary"
    for t, i in zip(tkn.SPECIAL_TOKENS, ids, strict=True):
        assert tok.encode(f"x{t}y").ids[1] == i
        assert len(tok.encode(t).ids) == 1
    # Like real Qwen, the reasoning tags are ordinary text, not added tokens.
    assert len(tok.encode("<think>").ids) > 1 and len(tok.encode("</answer>").ids) > 1
    assert 1000 <= tok.get_vocab_size() <= 2100


def test_tokenizer_is_deterministic(tmp_path):
    fresh = tkn._trained_json.__wrapped__()  # retrain, bypassing the in-process cache
    assert fresh == tkn._trained_json()
    a, b = tkn.write_tokenizer(tmp_path / "a"), tkn.write_tokenizer(tmp_path / "b")
    assert _files_sha(a) == _files_sha(b)


def test_hf_tokenizer_matches_raw_and_chat_template(tiny_models):
    from transformers import AutoTokenizer

    raw = tkn.build_tokenizer()
    hf = AutoTokenizer.from_pretrained(tiny_models.reasoner)
    text = (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        + QUESTION_PROMPT
        + "<|im_end|>\n"
        + ANSWER
    )
    assert hf(text)["input_ids"] == raw.encode(text).ids
    assert hf.decode(hf(ANSWER)["input_ids"]) == ANSWER
    assert (hf.eos_token, hf.pad_token) == ("<|im_end|>", "<|endoftext|>")
    rendered = hf.apply_chat_template(_messages("hi"), tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, *_messages("hi")]
    assert hf.apply_chat_template(with_system, tokenize=False).startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n"
    )


# -- checkpoints ---------------------------------------------------------------------------


def test_tiny_configs_keep_real_structure():
    from segzero_edge.testing import tiny_reasoner_config, tiny_segmenter_config

    cfg = tiny_reasoner_config()
    v, t = cfg.vision_config, cfg.text_config
    assert (v.patch_size, v.spatial_merge_size, v.temporal_patch_size, v.window_size) == (14, 2, 2, 112)
    assert set(v.fullatt_block_indexes) & set(range(v.depth)) and set(range(v.depth)) - set(
        v.fullatt_block_indexes
    )
    head_dim = t.hidden_size // t.num_attention_heads
    assert sum(t.rope_parameters["mrope_section"]) == head_dim // 2
    assert t.num_key_value_heads < t.num_attention_heads and v.out_hidden_size == t.hidden_size
    ids = tkn.special_token_ids(tkn.build_tokenizer())
    assert (cfg.image_token_id, cfg.vision_start_token_id) == (ids["<|image_pad|>"], ids["<|vision_start|>"])
    assert t.vocab_size >= len(ids) + ids["<|endoftext|>"] and t.vocab_size % 64 == 0
    assert not cfg.tie_word_embeddings and tiny_reasoner_config(tie_word_embeddings=True).tie_word_embeddings
    assert tiny_reasoner_config(text_config={"num_hidden_layers": 3}).text_config.hidden_size == t.hidden_size
    s = tiny_segmenter_config()
    assert s.vision_config.backbone_feature_sizes == [[256, 256], [128, 128], [64, 64]]
    assert s.prompt_encoder_config.image_size == 1024 and s.mask_decoder_config.num_multimask_outputs == 3


def test_checkpoints_reload_exactly_and_are_seeded(tiny_models, tmp_path):
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration, Sam2Model

    from segzero_edge.testing import build_tiny_reasoner, write_tiny_models

    for cls, d in (
        (Qwen2_5_VLForConditionalGeneration, tiny_models.reasoner),
        (Sam2Model, tiny_models.segmenter),
    ):
        model, info = cls.from_pretrained(d, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        saved = {_module_key(k): v for k, v in load_file(d / "model.safetensors").items()}
        state = model.state_dict()
        assert set(saved) <= set(state), sorted(set(saved) - set(state))[:5]
        for name, tensor in saved.items():
            assert torch.equal(state[name], tensor), name
        # Non-degenerate init: no tensor left at a constant (zero biases, unit norms).
        flat = [n for n, t in saved.items() if t.numel() > 1 and t.float().std() == 0]
        assert not flat, flat

    rebuilt = write_tiny_models(tmp_path / "same", seed=0)  # same seed: byte-identical files
    assert _files_sha(rebuilt.reasoner) == _files_sha(tiny_models.reasoner)
    assert _files_sha(rebuilt.segmenter) == _files_sha(tiny_models.segmenter)
    other = load_file(build_tiny_reasoner(tmp_path / "other", seed=1) / "model.safetensors")
    base = load_file(tiny_models.reasoner / "model.safetensors")
    assert not torch.equal(other["lm_head.weight"], base["lm_head.weight"])


def test_tied_override_ties_lm_head(tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.testing import build_tiny_reasoner

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        build_tiny_reasoner(tmp_path / "tied", tie_word_embeddings=True)
    )
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_cli_writes_both_models(tmp_path):
    out = tmp_path / "tiny"
    subprocess.run(
        [sys.executable, "-m", "segzero_edge.testing.tiny", str(out), "--seed", "3"],
        check=True,
        cwd=REPO,
        env=_env(),
        capture_output=True,
    )
    for sub in ("reasoner", "segmenter"):
        assert (out / sub / "model.safetensors").is_file()
        assert json.loads((out / sub / "config.json").read_text())["model_type"] in ("qwen2_5_vl", "sam2")
    assert (out / "reasoner" / "tokenizer.json").is_file() and (
        out / "reasoner" / "preprocessor_config.json"
    ).is_file()


# -- processor -----------------------------------------------------------------------------


def _reference_patches(img: Image.Image) -> np.ndarray:
    """Qwen2-VL's slow-processor patch layout, written out independently (no resize at 840)."""
    from segzero_edge.testing.tiny import IMAGE_MEAN, IMAGE_STD

    x = np.asarray(img, dtype=np.float64).transpose(2, 0, 1) / 255.0
    mean, std = np.array(IMAGE_MEAN)[:, None, None], np.array(IMAGE_STD)[:, None, None]
    x = np.stack([(x - mean) / std] * 2)  # temporal_patch_size copies of one frame
    gh, gw, m, p = 60, 60, 2, 14
    x = x.reshape(1, 2, 3, gh // m, m, p, gw // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, 3 * 2 * p * p)


def test_processor_expands_image_tokens(processor):
    from transformers import Qwen2_5_VLProcessor

    assert isinstance(processor, Qwen2_5_VLProcessor) and not hasattr(processor, "video_processor")
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    img = _image(0)
    text = processor.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    out = processor(text=[text], images=[img], return_tensors="pt")
    ids = out["input_ids"][0].tolist()
    pad, start, end = (
        processor.tokenizer.convert_tokens_to_ids(t)
        for t in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>")
    )
    assert ids.count(pad) == 900
    first = ids.index(pad)
    assert ids[first - 1] == start and ids[first + 900] == end
    assert tuple(out["pixel_values"].shape) == (3600, 3 * 2 * 14 * 14)
    assert out["image_grid_thw"].tolist() == [[1, 60, 60]]
    np.testing.assert_allclose(out["pixel_values"].numpy(), _reference_patches(img), rtol=0, atol=1e-5)
    # Non-square input: smart_resize to multiples of 28, tokens = t*h*w / merge**2.
    odd = processor(text=[text], images=[_image(1, 333, 500)])
    t, h, w = odd["image_grid_thw"][0].tolist()
    assert (t, h, w) == (1, 24, 36) and list(odd["input_ids"][0]).count(pad) == t * h * w // 4


def test_processor_chat_path_and_save_roundtrip(processor, tmp_path):
    from segzero_edge.models.processor import load_processor, save_processor

    img = _image(2)
    msgs = [
        {
            "role": "user",
            "content": [{"type": "image", "image": img}, {"type": "text", "text": QUESTION_PROMPT}],
        }
    ]
    text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    direct = processor(text=[text], images=[img], return_tensors="pt")
    via_chat = processor.apply_chat_template(
        msgs, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt"
    )
    reloaded = load_processor(save_processor(processor, tmp_path / "proc"))
    again = reloaded(text=[text], images=[img], return_tensors="pt")
    for other in (via_chat, again):
        assert torch.equal(other["input_ids"], direct["input_ids"])
        assert torch.equal(other["pixel_values"], direct["pixel_values"])
    assert (
        json.loads((tmp_path / "proc" / "preprocessor_config.json").read_text())["processor_class"]
        == "Qwen2_5_VLProcessor"
    )


# -- behaviour -----------------------------------------------------------------------------


def _greedy(reasoner, processor, img: Image.Image) -> tuple[list[int], torch.Tensor]:
    text = processor.apply_chat_template(_messages(), tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[img], return_tensors="pt")
    with torch.no_grad():
        out = reasoner.generate(
            **inputs, max_new_tokens=64, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    return out.sequences[0, inputs["input_ids"].shape[1] :].tolist(), torch.stack(out.logits)[:, 0]


def test_reasoner_greedy_decoding_is_varied_and_finite(reasoner, processor):
    tokens, logits = _greedy(reasoner, processor, _image(0))
    assert len(tokens) == 64
    assert len(set(tokens)) >= 8
    assert len(set(tokens[-8:])) > 1, f"decoding collapsed into one repeated token: {tokens}"
    assert torch.isfinite(logits).all()
    assert max(tokens) < len(processor.tokenizer), "alignment rows past the tokenizer must never win"
    top2 = logits.topk(2, dim=-1).values
    margins = top2[:, 0] - top2[:, 1]
    assert margins.median() > 0.05 and (margins > 1e-3).float().mean() > 0.9, margins
    other, _ = _greedy(reasoner, processor, _image(1))
    assert other != tokens, "a different image must change the output"


def test_segmenter_masks_are_nondegenerate(tiny_models):
    from transformers import Sam2Model

    model = Sam2Model.from_pretrained(tiny_models.segmenter).eval()
    pixels = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 1024, 1024)).astype(np.float32))
    with torch.no_grad():
        emb = model.get_image_embeddings(pixels)
        out = model(
            image_embeddings=emb,
            input_points=torch.tensor([[[[300.0, 400.0], [500.0, 600.0]]]]),
            input_labels=torch.tensor([[[1, 1]]]),
            input_boxes=torch.tensor([[[100.0, 100.0, 800.0, 900.0]]]),
            multimask_output=True,
        )
    assert [tuple(e.shape[-2:]) for e in emb] == [(256, 256), (128, 128), (64, 64)]
    masks, iou = out.pred_masks[0, 0], out.iou_scores[0, 0]
    assert masks.shape == (3, 256, 256) and torch.isfinite(masks).all()
    assert (masks > 0).any() and (masks < 0).any()
    assert len({round(v, 4) for v in iou.tolist()}) == 3
    binary = masks > 0
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (binary[a] != binary[b]).float().mean() > 0.01, "the 3 multimask outputs must differ"
    assert out.object_score_logits.item() > 0
