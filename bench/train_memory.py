"""Peak GPU memory and seconds per step of Seg-Zero QLoRA GRPO on the Qwen2.5-VL-3B / -7B architectures.

No download: the model is built from the public config values with random weights, saved
to a local dir, and loaded through the training stack exactly as a real run loads it (NF4
on load, LoRA on the LM, GRPOTrainer). The recipe is `train/configs/seg_zero_{3b,7b}_qlora.yaml`:
n=8 rollouts, 840x840 images, and completions forced to the full 1300 tokens (min_new_tokens),
the worst case for memory and time. Each architecture runs in its own process so that its
peak is its own; if one runs out of memory (or over its target) the next micro-batch size in
`--micro-batch` is tried.

    python bench/train_memory.py --arch 3b 7b --steps 2 --json bench/results/train_memory.json

Prints one line per step and a summary table; writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


def _ensure_package() -> None:
    """Map train/ to segzero_edge.train when the repo is not pip-installed (e.g. on a scratch GPU box)."""
    import importlib.util

    try:
        import segzero_edge.train

        return
    except ImportError:
        sys.path.insert(0, str(ROOT))
    import segzero_edge  # noqa: F401  (the parent package, from the repo root)

    spec = importlib.util.spec_from_file_location(
        "segzero_edge.train", ROOT / "train" / "__init__.py", submodule_search_locations=[str(ROOT / "train")]
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["segzero_edge.train"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]


#: Public config.json values of Qwen/Qwen2.5-VL-{3B,7B}-Instruct (text and vision towers).
VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}
ARCHS: dict[str, dict[str, Any]] = {
    "3b": {
        "text_config": {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128000,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        },
        "vision_config": {**VISION, "out_hidden_size": 2048},
        "tie_word_embeddings": True,
    },
    "7b": {
        "text_config": {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        },
        "vision_config": {**VISION, "out_hidden_size": 3584},
        "tie_word_embeddings": False,
    },
    "tiny": {},  # smoke test of this script on CPU
}
TARGET_GIB = {"3b": 12.0, "7b": 24.0, "tiny": 1.0}
CONFIGS = {"3b": "seg_zero_3b_qlora.yaml", "7b": "seg_zero_7b_qlora.yaml", "tiny": "tiny_cpu.yaml"}
COPY_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "generation_config.json",
)


def write_random_checkpoint(arch: str, out: Path, device: str) -> Path:
    """Random-weight Qwen2.5-VL of `arch` in bf16, saved with the project's tokenizer and processor.

    The tokenizer is the project's small one (its ids index the full-size vocabulary); prompt
    text is then ~1.3x longer than with Qwen's tokenizer, while the 900 image tokens of an
    840x840 image, which dominate the prompt, are exact.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from segzero_edge.testing.tiny import build_tiny_reasoner, tiny_reasoner_config

    if (out / "config.json").is_file():
        return out
    tiny = build_tiny_reasoner(out.parent / f"{out.name}-tokenizer")
    if arch == "tiny":
        shutil.copytree(tiny, out)
        return out
    config = tiny_reasoner_config(**ARCHS[arch])
    start = time.perf_counter()
    print(f"[{arch}] building a random-weight checkpoint in {out} ...", flush=True)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    for name in COPY_FILES:
        if (tiny / name).is_file():
            shutil.copy(tiny / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    print(
        f"[{arch}] random checkpoint: {params / 1e9:.2f}B parameters, written in {time.perf_counter() - start:.0f}s",
        flush=True,
    )
    return out


def measure(
    arch: str, micro_batch: int | None, steps: int, overrides: list[str], work: Path
) -> dict[str, Any]:
    """One training run of `steps` optimizer steps; per-step time and peak memory."""
    import torch
    from transformers import TrainerCallback

    from segzero_edge.train.config import load_config
    from segzero_edge.train.trainer import build_trainer

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    ckpt = write_random_checkpoint(arch, work / f"qwen2_5_vl_{arch}_random", device)
    run_dir = work / f"run_{arch}_mb{micro_batch}"
    shutil.rmtree(run_dir, ignore_errors=True)
    base = load_config(ROOT / "train" / "configs" / CONFIGS[arch])
    settings = [
        f"model={ckpt}",
        "data=synthetic",
        f"synthetic_rows={max(8, base.prompts_per_step * (steps + 1))}",
        f"output_dir={run_dir}",
        f"max_steps={steps}",
        f"save_steps={steps + 1000}",  # measure training, not checkpoint writes
        "report_to=none",
        f"device={device}",
    ]
    if micro_batch:
        settings.append(f"micro_batch_size={micro_batch}")
    config = load_config(ROOT / "train" / "configs" / CONFIGS[arch], settings + overrides)
    # every completion runs to the full length: the worst case for memory and time
    config = dataclasses.replace(config, min_completion_length=config.max_completion_length)

    records: list[dict[str, Any]] = []
    generate_s: list[float] = []

    class Probe(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()
            generate_s.clear()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            rec = {
                "step": state.global_step,
                "seconds": time.perf_counter() - self.t0,
                "generate_seconds": sum(generate_s),
            }
            if cuda:
                free, total = torch.cuda.mem_get_info()
                rec.update(
                    peak_allocated_gib=torch.cuda.max_memory_allocated() / GIB,
                    peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB,
                    device_used_gib=(total - free) / GIB,
                )
            records.append(rec)
            print(
                f"[{arch}] step {rec['step']}: "
                + ", ".join(f"{k}={v:.2f}" for k, v in rec.items() if k != "step"),
                flush=True,
            )

    start = time.perf_counter()
    trainer, info = build_trainer(config, extra_callbacks=[Probe()])
    weights_gib = torch.cuda.memory_allocated() / GIB if cuda else None
    print(
        f"[{arch}] trainer built in {time.perf_counter() - start:.0f}s; weights "
        f"{'-' if weights_gib is None else f'{weights_gib:.2f}'} GiB on the GPU",
        flush=True,
    )
    inner = trainer._generate_single_turn

    def timed_generate(*args: Any, **kwargs: Any) -> Any:  # split generation from training time
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        generate_s.append(time.perf_counter() - t0)
        print(f"[{arch}] generated in {generate_s[-1]:.1f}s", flush=True)
        return out

    trainer._generate_single_turn = timed_generate
    trainer.train()
    logs = [log for log in trainer.state.log_history if "loss" in log]
    steady = records[1:] or records
    return {
        "arch": arch,
        "gpu": info["gpu"],
        "versions": info["versions"],
        "config": {
            k: getattr(config, k)
            for k in (
                "num_generations",
                "prompts_per_step",
                "micro_batch_size",
                "max_completion_length",
                "min_completion_length",
                "image_size",
                "quantization",
                "double_quant",
                "compute_dtype",
                "lora_r",
                "optim",
                "gradient_checkpointing",
                "bf16",
                "loss_type",
                "beta",
            )
        },
        "completions_per_step": config.prompts_per_step * config.num_generations,
        "trainable_parameters": info["trainable_parameters"],
        "weights_gib": weights_gib,
        "steps": records,
        "seconds_per_step_median": statistics.median(r["seconds"] for r in steady),
        "generate_seconds_per_step_median": statistics.median(r["generate_seconds"] for r in steady),
        "peak_allocated_gib": max((r.get("peak_allocated_gib", 0) for r in records), default=None),
        "peak_reserved_gib": max((r.get("peak_reserved_gib", 0) for r in records), default=None),
        "mean_completion_length": statistics.mean(log["completions/mean_length"] for log in logs)
        if logs
        else None,
        "target_gib": TARGET_GIB[arch],
    }


def _child(args: argparse.Namespace) -> int:
    result = measure(args.arch[0], args.micro_batch[0] or None, args.steps, args.set, Path(args.work))
    Path(args.result).write_text(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["3b", "7b"], choices=sorted(ARCHS))
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per run (the first is warm-up)")
    parser.add_argument(
        "--micro-batch",
        type=int,
        nargs="+",
        default=[0],
        help="micro-batch sizes to try in order until one fits (0 = the config's)",
    )
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value config overrides")
    parser.add_argument(
        "--work", default="/tmp/segzero_train_bench", help="scratch dir for checkpoints and runs"
    )
    parser.add_argument("--json", default=None, help="write all results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _ensure_package()
    if args.child:
        return _child(args)

    Path(args.work).mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for arch in args.arch:
        for mb in args.micro_batch:
            out = Path(args.work) / f"result_{arch}_{mb}.json"
            out.unlink(missing_ok=True)
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--arch",
                arch,
                "--micro-batch",
                str(mb),
                "--steps",
                str(args.steps),
                "--work",
                args.work,
                "--result",
                str(out),
                "--set",
                *args.set,
            ]
            start = time.perf_counter()
            code = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
            if code != 0 or not out.is_file():
                print(
                    f"[{arch}] micro_batch={mb or 'config'} failed (exit {code}) after "
                    f"{time.perf_counter() - start:.0f}s",
                    flush=True,
                )
                results.append({"arch": arch, "micro_batch": mb, "failed": True, "exit_code": code})
                continue
            result = json.loads(out.read_text())
            result["wall_seconds"] = time.perf_counter() - start
            results.append(result)
            peak = result["peak_reserved_gib"]
            if peak is None or peak <= result["target_gib"]:
                break
            print(
                f"[{arch}] peak {peak:.1f} GiB is over the {result['target_gib']} GiB target; trying the next "
                "micro-batch size",
                flush=True,
            )
        if arch != "tiny":
            shutil.rmtree(Path(args.work) / f"qwen2_5_vl_{arch}_random", ignore_errors=True)
        if args.json:  # after each architecture, so that a later one running out of time loses nothing
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    print(
        "\narch | GPU | completions/step | micro-batch | peak allocated GiB | peak reserved GiB | "
        "weights GiB | s/step | of which generate s | target GiB"
    )
    for r in results:
        if r.get("failed"):
            print(
                f"{r['arch']} | failed (exit {r['exit_code']}) with micro_batch={r['micro_batch'] or 'config'}"
            )
            continue
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(
            f"{r['arch']} | {r['gpu']} | {r['completions_per_step']} | {r['config']['micro_batch_size']} | "
            f"{fmt(r['peak_allocated_gib'])} | {fmt(r['peak_reserved_gib'])} | {fmt(r['weights_gib'])} | "
            f"{r['seconds_per_step_median']:.1f} | {r['generate_seconds_per_step_median']:.1f} | {r['target_gib']}"
        )
    return 0 if results and not all(r.get("failed") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
