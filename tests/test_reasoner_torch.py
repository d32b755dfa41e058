"""TorchReasoner: loading, the Seg-Zero prompt, generation settings, LoRA adapters."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from protocols import assert_accepts  # noqa: E402

from segzero_edge.models.reasoner import GenerationConfig, TorchEncoded, TorchReasoner  # noqa: E402
from segzero_edge.pipeline import Generation, Reasoner  # noqa: E402
from segzero_edge.prompts import chat_messages, user_prompt  # noqa: E402


@pytest.fixture(scope="module")
def reasoner(tiny_models) -> TorchReasoner:
    return TorchReasoner.from_pretrained(tiny_models.reasoner, config=GenerationConfig(max_new_tokens=16))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def enc(reasoner, image) -> TorchEncoded:
    return reasoner.encode_image(image)


def test_is_a_reasoner_and_encodes_to_840(reasoner, enc):
    assert_accepts(reasoner.encode_image, Reasoner.encode_image)
    assert_accepts(reasoner.generate, Reasoner.generate)
    assert isinstance(enc, TorchEncoded)
    assert enc.image.size == (840, 840)
    # 840 = 30 * 28 -> 60x60 patches of 14 px, 3 * 2 * 14 * 14 values each
    assert enc.image_grid_thw.tolist() == [[1, 60, 60]]
    assert tuple(enc.pixel_values.shape) == (3600, 1176)
    assert tuple(enc.features.shape) == (900, 64)  # 2x2 merge, text hidden size


def test_cached_vision_features_give_the_same_tokens(reasoner, enc):
    from dataclasses import replace

    cfg = GenerationConfig(max_new_tokens=12)
    cached = reasoner.generate_ids(enc, "the red circle", cfg).ids
    recomputed = reasoner.generate_ids(
        replace(enc, vision=None), "the red circle", cfg
    ).ids  # pixel_values path
    assert cached == recomputed


def test_prompt_is_seg_zero_chat_with_900_image_tokens(reasoner, enc):
    inputs = reasoner.prompt_inputs(enc, "The Red Cup.")
    ids = inputs["input_ids"][0]
    pad = reasoner.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((ids == pad).sum()) == 900
    text = reasoner.processor.tokenizer.decode(ids[ids != pad])
    assert user_prompt("The Red Cup.") in text
    assert "'the red cup'" in text  # Seg-Zero lower-cases and strips dots
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert text.endswith("<|im_start|>assistant\n")


def test_greedy_generate_is_deterministic_and_counts_tokens(reasoner, enc, image):
    a = reasoner.generate(enc, "the red circle")
    b = reasoner.generate(image, "the red circle")  # raw images are encoded on the fly
    assert isinstance(a, Generation)
    assert a.text == b.text and a.tokens == b.tokens
    assert 1 <= a.tokens <= 16
    assert a.prefill_ms > 0 and a.decode_ms >= 0


def test_generate_ids_match_text_and_logits(reasoner, enc):
    out = reasoner.generate_ids(enc, "the red circle", GenerationConfig(max_new_tokens=8), return_logits=True)
    assert out.logits.shape == (len(out.ids), reasoner.model.config.get_text_config().vocab_size)
    # greedy without repetition penalty: every token is the argmax of its raw logits
    assert out.logits.argmax(-1).tolist() == out.ids
    text = reasoner.processor.tokenizer.decode(out.ids, skip_special_tokens=True)
    assert reasoner.generate(enc, "the red circle", max_new_tokens=8).text == text


def test_settings_per_instance_and_per_call(reasoner, enc):
    assert reasoner.generate(enc, "the dog", max_new_tokens=3).tokens <= 3
    sampled = [
        reasoner.generate(enc, "the dog", temperature=1.0, seed=s, max_new_tokens=24).text for s in (1, 1, 2)
    ]
    assert sampled[0] == sampled[1]  # same seed, same sample
    assert sampled[0] != sampled[2]  # random weights: 24 sampled tokens never collide across seeds
    greedy = reasoner.generate(enc, "the dog", max_new_tokens=24)
    penalised = reasoner.generate(enc, "the dog", max_new_tokens=24, repetition_penalty=3.0)
    assert greedy.text != penalised.text


def test_generation_config_validates():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        GenerationConfig(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationConfig(temperature=-1.0)
    assert GenerationConfig().resolved(1.05).repetition_penalty == 1.05
    assert GenerationConfig(repetition_penalty=1.0).resolved(1.05).repetition_penalty == 1.0


def test_bad_arguments(tiny_models, tmp_path):
    with pytest.raises(ValueError, match="needs an adapter"):
        TorchReasoner.from_pretrained(tiny_models.reasoner, merge_adapter=True)
    with pytest.raises(ValueError, match="dtype"):
        TorchReasoner.from_pretrained(tiny_models.reasoner, dtype="int3")


def test_lora_adapter_loads_and_merges(tiny_models, tmp_path, image):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models.reasoner)
    # init_lora_weights=False: random A and B, so the adapter really changes the model
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(0)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    plain = TorchReasoner.from_pretrained(tiny_models.reasoner)
    unmerged = TorchReasoner.from_pretrained(tiny_models.reasoner, adapter=str(tmp_path / "adapter"))
    merged = TorchReasoner.from_pretrained(
        tiny_models.reasoner, adapter=str(tmp_path / "adapter"), merge_adapter=True
    )
    assert not hasattr(merged.model, "peft_config")
    enc = plain.encode_image(image)
    cfg = GenerationConfig(max_new_tokens=12)
    ids = {
        name: r.generate_ids(enc, "the cat", cfg).ids
        for name, r in (("plain", plain), ("unmerged", unmerged), ("merged", merged))
    }
    assert ids["merged"] == ids["unmerged"]
    assert ids["merged"] != ids["plain"]


def test_chat_messages_render_through_the_processor(reasoner):
    text = reasoner.processor.apply_chat_template(
        chat_messages("a b"), tokenize=False, add_generation_prompt=True
    )
    assert text.count("<|image_pad|>") == 1
