"""GRPO + QLoRA on the tiny random Qwen2.5-VL (CPU): what trains, what is logged, checkpoints,
kill-and-resume, a learning signal, merge parity, plot, and the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("bitsandbytes")

from transformers import TrainerCallback  # noqa: E402

from segzero_edge.rewards import SEG_ZERO_COMPONENTS  # noqa: E402
from segzero_edge.testing import cached_tiny_models  # noqa: E402
from segzero_edge.train.config import load_config  # noqa: E402
from segzero_edge.train.rewards import completion_text, reward_functions  # noqa: E402
from segzero_edge.train.trainer import build_trainer, run_training  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "train" / "configs" / "tiny_cpu.yaml"
# One BLAS thread: this machine's 2 cores are shared, and oversubscribed threads make a
# tiny step 10-30x slower than a single thread.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(out: Path, *overrides: str):
    """tiny_cpu.yaml with the tiny model's directory (the CLI resolves `model: tiny`; Python callers pass a dir)."""
    return load_config(TINY, [f"output_dir={out}", f"model={cached_tiny_models().reasoner}", *overrides])


def text_length(completions, **_):
    """A toy reward that varies between rollouts (the Seg-Zero ones are all 0 on a random model)."""
    return [len(completion_text(c)) / 100 for c in completions]


def metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


class Snapshot(TrainerCallback):
    """Parameters (incl. the packed 4-bit weights) at the start and end of training."""

    def __init__(self):
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}

    @staticmethod
    def _grab(model) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in model.named_parameters()}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = self._grab(model)
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.model = model

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = self._grab(model)


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory):
    """3 NF4 QLoRA steps on the tiny model: Seg-Zero's five rewards plus a toy one."""
    out = tmp_path_factory.mktemp("qlora") / "run"
    snap = Snapshot()
    result = run_training(
        tiny_config(out, "max_steps=3", "save_steps=2"),
        rewards=[*reward_functions(SEG_ZERO_COMPONENTS), text_length],
        extra_callbacks=[snap],
    )
    return SimpleNamespace(out=out, result=result, snap=snap)


def test_base_is_nf4_with_vision_and_head_unquantized(qlora_run):
    import bitsandbytes as bnb

    model = qlora_run.snap.model
    four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all("language_model" in n for n in four_bit)
    assert len(four_bit) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert not any("visual" in n or "lm_head" in n for n in four_bit)
    weight = next(
        p for n, p in model.named_parameters() if "language_model" in n and "q_proj.base_layer" in n
    )
    assert weight.quant_state.quant_type == "nf4" and weight.quant_state.nested  # double quantisation


def test_only_language_model_lora_parameters_train(qlora_run):
    snap = qlora_run.snap
    assert snap.trainable and all("lora_" in n and "language_model" in n for n in snap.trainable)
    # every adapter received gradient: B starts at zero and only a gradient moves it
    lora_b = [n for n in snap.trainable if "lora_B" in n]
    assert len(lora_b) == 14
    for name in lora_b:
        assert torch.count_nonzero(snap.before[name]) == 0 and torch.count_nonzero(snap.after[name]) > 0, name
    frozen = [n for n in snap.before if n not in snap.trainable]
    assert any("visual" in n for n in frozen) and any("base_layer" in n for n in frozen)
    changed = [n for n in frozen if not torch.equal(snap.before[n], snap.after[n])]
    assert changed == []


def test_every_reward_component_kl_length_and_time_are_logged(qlora_run):
    rows = metrics(qlora_run.out)
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    names = [*SEG_ZERO_COMPONENTS, "text_length"]
    for row in rows:
        parts = [float(row[f"rewards/{name}/mean"]) for name in names]
        assert float(row["reward"]) == pytest.approx(sum(parts), abs=1e-5)  # the summed reward
        assert float(row["kl"]) >= 0 and float(row["step_time"]) > 0 and float(row["wall_s"]) > 0
        assert 0 < float(row["completions/mean_length"]) <= 24
    assert float(rows[-1]["kl"]) > 0  # the policy has moved away from the reference (adapters off)


def test_checkpoint_and_run_records(qlora_run):
    out, result = qlora_run.out, qlora_run.result
    assert result.exit_code == 0 and result.global_step == 3 and result.interrupted_by is None
    ckpt = out / "checkpoint-2"
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
    ):
        assert (ckpt / name).is_file(), name
    assert json.loads((ckpt / "trainer_state.json").read_text())["global_step"] == 2
    assert (out / "adapter_model.safetensors").is_file()  # the final adapter
    info = json.loads((out / "run_info.json").read_text())
    assert info["device"] == "cpu" and info["optim"] == "adamw_torch"
    assert info["data"]["kept"] == 8 and info["rewards"][-1] == "text_length"
    assert load_config(out / "train_config.yaml").max_steps == 3


def test_plot(qlora_run):
    from PIL import Image

    from segzero_edge.train.plot import plot_run, plotted_columns

    png = plot_run(qlora_run.out)
    header = list(metrics(qlora_run.out)[0])
    panels = plotted_columns(header)
    assert panels[0] == "reward" and "kl" in panels and "completions/mean_length" in panels
    assert len([p for p in panels if p.startswith("rewards/")]) == 6
    img = Image.open(png)
    assert img.size == (3 * 360, 4 * 200 + 24)
    assert (31, 119, 180) in {c for _, c in img.getcolors(1 << 16)}  # curves were drawn


def test_fresh_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(qlora_run, tmp_path):
    with pytest.raises(FileExistsError, match="pass --resume"):
        build_trainer(tiny_config(qlora_run.out))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        build_trainer(tiny_config(tmp_path / "new"), resume=True)


def test_sigterm_saves_and_resume_continues_at_the_right_step(tmp_path):
    from segzero_edge.cli import main

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "segzero_edge",
        "train",
        "--config",
        str(TINY),
        f"output_dir={out}",
        "max_steps=500",
        "save_steps=1000",
        "synthetic_rows=4",
        "max_completion_length=8",
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if (out / "metrics.csv").is_file() and len(metrics(out)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output and "--resume" in output
    stopped = int(metrics(out)[-1]["step"])
    assert 2 <= stopped < 500
    state = json.loads((out / f"checkpoint-{stopped}" / "trainer_state.json").read_text())
    assert state["global_step"] == stopped

    code = main(
        [
            "train",
            "--config",
            str(TINY),
            f"output_dir={out}",
            f"max_steps={stopped + 2}",
            "save_steps=1000",
            "synthetic_rows=4",
            "max_completion_length=8",
            "--resume",
        ]
    )
    assert code == 0
    steps = [int(r["step"]) for r in metrics(out)]
    assert steps == list(range(1, stopped + 3))  # continued at stopped + 1, nothing repeated
    info = json.loads((out / "run_info.json").read_text())
    assert info["resumed_from"].endswith(f"checkpoint-{stopped}")
    final = json.loads((out / f"checkpoint-{stopped + 2}" / "trainer_state.json").read_text())
    assert final["global_step"] == stopped + 2


def test_mean_reward_rises_on_a_reachable_toy_reward(tmp_path):
    """Plain LoRA (fast on CPU): reward = share of completion tokens equal to one target token,
    the initial policy's most frequent one. GRPO must raise it within a couple dozen steps."""
    state: dict[str, int] = {}

    def target_share(completions, completion_ids, **_):
        if "target" not in state:
            state["target"] = Counter(t for ids in completion_ids for t in ids).most_common(1)[0][0]
        return [sum(t == state["target"] for t in ids) / max(len(ids), 1) for ids in completion_ids]

    config = tiny_config(
        tmp_path / "run",
        "quantization=none",
        "gradient_checkpointing=false",
        "learning_rate=2e-2",
        "beta=0",
        "num_generations=8",
        "prompts_per_step=1",
        "micro_batch_size=8",
        "max_completion_length=8",
        "image_size=56",
        "synthetic_rows=4",
        "num_train_epochs=100",
        "max_steps=24",
        "save_steps=1000",
    )
    run_training(config, rewards=[target_share])
    rewards = [float(r["reward"]) for r in metrics(tmp_path / "run")]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last >= first + 0.3, rewards
    assert last >= 0.5, rewards


def test_merged_model_equals_the_peft_model(tmp_path, tiny_models):
    from peft import get_peft_model
    from PIL import Image
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.prompts import chat_messages
    from segzero_edge.train.config import save_config
    from segzero_edge.train.merge import merge_adapter
    from segzero_edge.train.model import load_processor, lora_config

    run = tmp_path / "run"
    run.mkdir()
    config = tiny_config(run, f"model={tiny_models.reasoner}")
    save_config(config, run / "train_config.yaml")
    lora = lora_config(config)
    lora.init_lora_weights = False  # random A and B: the adapter changes the outputs
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_models.reasoner, dtype=torch.float32)
    peft_model = get_peft_model(base, lora).eval()
    peft_model.save_pretrained(run)

    merged_dir = merge_adapter(run, tmp_path / "merged", dtype="float32")
    merged = Qwen2_5_VLForConditionalGeneration.from_pretrained(merged_dir, dtype=torch.float32).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())

    processor = load_processor(str(merged_dir))  # the processor files travelled with the weights
    image = Image.new("RGB", (112, 112), (200, 30, 30))
    inputs = processor.apply_chat_template(
        [chat_messages("the red square", image)],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        want = peft_model(**inputs).logits
        got = merged(**inputs).logits
        with peft_model.disable_adapter():
            plain = peft_model(**inputs).logits
    assert (want - plain).abs().max() > 1e-2  # the adapter matters ...
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # ... and merging keeps it exactly

    with pytest.raises(FileExistsError, match="not empty"):
        merge_adapter(run, merged_dir)


def test_cli_tiny_cpu_config_then_plot_and_merge(tmp_path, capsys):
    from segzero_edge.cli import main

    run = tmp_path / "run"
    assert main(["train", "--config", str(TINY), f"output_dir={run}", "max_steps=2"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert main(["train", "plot", str(run)]) == 0
    assert (run / "metrics.png").is_file()
    assert main(["train", "merge", "--run", str(run), "--out", str(tmp_path / "merged")]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (tmp_path / "merged" / name).is_file(), name
    # usage errors are one line and exit 2
    assert main(["train", "lr=1"]) == 2
    assert main(["train", "--config", str(TINY), "betta=1"]) == 2
    assert main(["train", "--config", str(TINY), f"output_dir={run}"]) == 2  # exists: needs --resume
    assert main(["train", "merge", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "--config YAML is required" in err and "unknown config key 'betta'" in err and "--resume" in err


@pytest.mark.slow
def test_merge_then_export(tmp_path, tiny_models):
    from segzero_edge.cli import main

    run = tmp_path / "run"
    assert main(["train", "--config", str(TINY), f"output_dir={run}", "max_steps=1"]) == 0
    assert main(["train", "merge", "--run", str(run), "--out", str(tmp_path / "merged")]) == 0
    engines = tmp_path / "engines"
    assert (
        main(
            [
                "export",
                "--reasoner",
                str(tmp_path / "merged"),
                "--segmenter",
                str(tiny_models.segmenter),
                "--out",
                str(engines),
            ]
        )
        == 0
    )
    assert (engines / "manifest.json").is_file()


def test_training_prompt_is_the_inference_prompt(tiny_models):
    """What GRPOTrainer tokenizes (our row + TRL's image insertion) is exactly the Seg-Zero
    prompt that inference builds with `segzero_edge.prompts.chat_messages`."""
    from trl.data_utils import prepare_multimodal_messages

    from segzero_edge.prompts import SYSTEM_PROMPT, chat_messages
    from segzero_edge.train.data import prepare_dataset, synthetic_mask_dataset
    from segzero_edge.train.model import load_processor

    rows, _ = prepare_dataset(synthetic_mask_dataset(1, seed=4), image_size=112, system_prompt=SYSTEM_PROMPT)
    row = rows[0]
    processor = load_processor(str(tiny_models.reasoner))
    kwargs = {"add_generation_prompt": True, "tokenize": True, "return_dict": True, "return_tensors": "pt"}
    trained = processor.apply_chat_template([prepare_multimodal_messages(row["prompt"], images=[row["image"]])], **kwargs)
    served = processor.apply_chat_template([chat_messages(row["query"], row["image"])], **kwargs)
    assert torch.equal(trained["input_ids"], served["input_ids"])
    assert torch.equal(trained["pixel_values"], served["pixel_values"])
    assert processor.image_token_id in trained["input_ids"][0].tolist()


def test_metrics_rows_past_the_resumed_checkpoint_are_dropped(tmp_path):
    """A run killed hard (no signal handler) after step 5 with its last checkpoint at step 4:
    on resume, row 5 goes, so that the file describes one consistent run."""
    from segzero_edge.train.callbacks import MetricsCsvCallback, metric_columns

    columns = metric_columns(["think_format"])
    with (tmp_path / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows({"step": s, "reward": s / 10} for s in range(1, 6))
    args, state = SimpleNamespace(should_save=True), SimpleNamespace(global_step=4)
    MetricsCsvCallback(tmp_path, ["think_format"]).on_train_begin(args, state, None)
    assert [r["step"] for r in metrics(tmp_path)] == ["1", "2", "3", "4"]
    with pytest.raises(ValueError, match="reward list changed"):
        MetricsCsvCallback(tmp_path, ["bbox_iou"]).on_train_begin(args, state, None)
