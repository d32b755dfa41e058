"""Training in the multi-object (VisionReasoner) format: recipe, data adapters, reward
adapters, the training prompt, and a tiny QLoRA run that logs every component."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

datasets = pytest.importorskip("datasets")

from segzero_edge.multi_truth import ObjectTruth, instance_truth, parse_solution_multi, solution_json  # noqa: E402
from segzero_edge.prompts import SYSTEM_PROMPT, training_user_text  # noqa: E402
from segzero_edge.rewards_multi import REWARDS_MULTI, VISION_REASONER_COMPONENTS, vision_reasoner  # noqa: E402
from segzero_edge.train.config import load_config  # noqa: E402
from segzero_edge.train.data import prepare_dataset  # noqa: E402
from segzero_edge.train.data_multi import synthetic_multi_dataset  # noqa: E402
from segzero_edge.train.rewards import make_reward, reward_functions  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def rgb(h: int, w: int, seed: int = 0) -> dict:
    return {"bytes": png(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)), "path": None}


def test_recipe_is_seg_zeros_visionreasoner_run():
    c = load_config(CONFIGS / "vision_reasoner_7b_qlora.yaml")
    assert (c.model, c.answer_format) == ("Qwen/Qwen2.5-VL-7B-Instruct", "multi")
    # training_scripts/run_visionreasoner_7b.sh: n=8, T=1.0, kl_loss_coef=1e-2, 2000-token responses
    assert (c.num_generations, c.temperature, c.beta, c.epsilon, c.max_completion_length) == (8, 1.0, 1e-2, 0.2, 2000)
    assert (c.image_size, c.system_prompt) == (840, "You are a helpful assistant.")
    assert c.rewards == list(VISION_REASONER_COMPONENTS)
    assert (c.quantization, c.optim, c.weight_decay) == ("nf4", "paged_adamw_8bit", 1e-2)
    tiny = load_config(CONFIGS / "tiny_cpu_multi.yaml")
    assert (tiny.model, tiny.data, tiny.device, tiny.answer_format) == ("tiny", "synthetic", "cpu", "multi")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["answer_format=multi"], "do not score multi-format answers"),  # tiny_cpu's single rewards
        (["rewards=think_format,accuracy"], "do not score single-format answers"),
        (["data_format=instances"], "set answer_format=multi"),
        (["answer_format=json"], "answer_format"),
    ],
)
def test_format_and_rewards_must_agree(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(CONFIGS / "tiny_cpu.yaml", overrides)


SOLUTION = solution_json([ObjectTruth((100, 100, 200, 200), (150, 150)), ObjectTruth((400, 300, 600, 500), (500, 400))])
TEXTS = [
    f"<think>two</think><answer>{SOLUTION}</answer>",
    f"<think>one</think><answer>{json.dumps(json.loads(SOLUTION)[:1])}</answer>",
    "<think>x. x. x.</think><answer>[]</answer>",
    "",
]


@pytest.mark.parametrize("name", sorted(REWARDS_MULTI))
def test_reward_adapters_equal_the_per_sample_rewards(name):
    fn = make_reward(name)
    assert fn.__name__ == name
    got = fn(prompts=[None] * 4, completions=[[{"role": "assistant", "content": t}] for t in TEXTS], solution=[SOLUTION] * 4)
    assert got == [REWARDS_MULTI[name](t, SOLUTION) for t in TEXTS]
    with pytest.raises(ValueError, match="'solution' has 1 entries for 4"):
        fn(completions=TEXTS, solution=[SOLUTION])
    funcs = reward_functions(VISION_REASONER_COMPONENTS)
    parts = [f(completions=TEXTS, solution=[SOLUTION] * 4) for f in funcs]
    assert [sum(p) for p in zip(*parts, strict=True)] == [vision_reasoner(t, SOLUTION) for t in TEXTS]


def test_segzero_layout_keeps_the_solution_and_skips_bad_rows():
    rows = {
        "problem": ["All the cups.", "the dogs", "nothing", "  ", "the cats"],
        "solution": [SOLUTION, "<box>(1,2),(3,4)</box>", "[]", SOLUTION, SOLUTION],
        "image": [rgb(840, 840, i) for i in range(4)] + [{"bytes": b"broken", "path": None}],
    }
    prepared, report = prepare_dataset(datasets.Dataset.from_dict(rows), answer_format="multi", system_prompt=SYSTEM_PROMPT)
    assert report.layout == "segzero" and report.kept == 1
    assert dict(report.skipped) == {"unparsable solution": 1, "no target": 1, "missing text": 1, "unreadable image": 1}
    row = prepared[0]
    assert row["solution"] == SOLUTION and "gt_bbox" not in row
    assert row["prompt"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": training_user_text("All the cups.", "multi")},
    ]
    small, _ = prepare_dataset(datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}), answer_format="multi", image_size=420)
    assert parse_solution_multi(small[0]["solution"]) == [ObjectTruth((50, 50, 100, 100), (75, 75)), ObjectTruth((200, 150, 300, 250), (250, 200))]


def test_mask_and_instance_layouts_compute_each_instance():
    labels = np.zeros((60, 80), np.uint8)
    labels[5:20, 10:30] = 1
    labels[30:50, 40:70] = 2
    a, b = labels == 1, labels == 2
    expected = [instance_truth(a), instance_truth(b)]
    as_labels = {"image": [rgb(60, 80)], "text": ["the two boxes"], "mask": [png(labels)]}
    prepared, report = prepare_dataset(datasets.Dataset.from_dict(as_labels), answer_format="multi")
    assert report.layout == "mask" and parse_solution_multi(prepared[0]["solution"]) == expected
    binary = {**as_labels, "mask": [png((labels > 0).astype(np.uint8) * 255)]}  # one object: the union
    prepared, _ = prepare_dataset(datasets.Dataset.from_dict(binary), answer_format="multi")
    assert parse_solution_multi(prepared[0]["solution"]) == [instance_truth(labels > 0)]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string"), "masks": datasets.Sequence(datasets.Image())})
    instances = {"image": [rgb(60, 80)], "text": ["the two boxes"], "masks": [[png(a.astype(np.uint8) * 255), png(np.zeros((60, 80), np.uint8)), png(b.astype(np.uint8) * 255)]]}
    prepared, report = prepare_dataset(datasets.Dataset.from_dict(instances, features=features), answer_format="multi")
    assert report.layout == "instances" and parse_solution_multi(prepared[0]["solution"]) == expected
    with pytest.raises(ValueError, match="cannot tell the dataset layout"):
        prepare_dataset(datasets.Dataset.from_dict(instances, features=features))  # single format: no instance layout


def test_synthetic_rows_are_multi_target_instances():
    source = synthetic_multi_dataset(4, seed=2, size=224)
    assert source.column_names == ["image", "text", "masks"] and all(len(m) >= 1 for m in source["masks"])
    prepared, report = prepare_dataset(source, answer_format="multi", image_size=112)
    assert report.kept == 4 and all(parse_solution_multi(r["solution"]) for r in prepared)


def test_training_prompt_is_seg_zeros_multi_training_prompt(tiny_models):
    """What GRPOTrainer renders from our row (TRL inserts the image before the user text) is
    the prompt Seg-Zero's rl_dataset.py renders: user content "<image>\\n" + template, the
    <image> expanded to the vision tokens."""
    from trl.data_utils import prepare_multimodal_messages

    from segzero_edge.train.model import load_processor

    prepared, _ = prepare_dataset(synthetic_multi_dataset(1, seed=4), answer_format="multi", image_size=112, system_prompt=SYSTEM_PROMPT)
    row = prepared[0]
    processor = load_processor(str(tiny_models.reasoner))
    ours = processor.apply_chat_template(
        [prepare_multimodal_messages(row["prompt"], images=[row["image"]])], tokenize=False, add_generation_prompt=True
    )[0]
    from segzero_edge.prompts import user_prompt

    verl = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "<image>\n" + user_prompt(row["query"], "multi")}]
    theirs = processor.tokenizer.apply_chat_template(verl, tokenize=False, add_generation_prompt=True)
    theirs = theirs.replace("<image>", "<|vision_start|><|image_pad|><|vision_end|>")
    assert ours == theirs
    assert "<|vision_end|>\nPlease find \"" in ours


def test_tiny_multi_run_logs_every_component(tmp_path, tiny_models):
    import torch

    from segzero_edge.train.trainer import run_training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        out = tmp_path / "run"
        result = run_training(load_config(CONFIGS / "tiny_cpu_multi.yaml", [f"output_dir={out}", f"model={tiny_models.reasoner}", "max_steps=2", "synthetic_rows=4"]))
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0 and result.global_step == 2
    with (out / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2]
    for row in rows:
        parts = [float(row[f"rewards/{name}/mean"]) for name in VISION_REASONER_COMPONENTS]
        assert float(row["reward"]) == pytest.approx(sum(parts), abs=1e-5)
        assert 0.0 <= float(row["rewards/seg_format/mean"]) <= 2.0 and 0.0 <= float(row["rewards/accuracy/mean"]) <= 3.0
    info = json.loads((out / "run_info.json").read_text())
    assert info["rewards"] == list(VISION_REASONER_COMPONENTS) and info["data"]["layout"] == "instances"
