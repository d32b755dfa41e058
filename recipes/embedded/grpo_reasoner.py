"""GRPO stage of the embedded reasoner through the project's training stack, then merge.

    python recipes/embedded/grpo_reasoner.py --config recipes/embedded/grpo.yaml [--minutes M] [key=value ...]

Builds the run with `segzero_edge.train.trainer.build_trainer` (TRL GRPOTrainer, Seg-Zero's
five rewards, LoRA from `lora_config`), trains until `max_steps` or the optional time cap
(`--minutes`; the steps done are printed, so the run can be repeated with max_steps=N), saves
the adapter, merges it into the SFT weights (`<output_dir>/merged`, HF format + processor
files) and greedy-decodes val rows for Seg-Zero's rewards, as sft_reasoner.py does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_bf16, hardware, timed, write_json
from reasoner_arch import copy_processor_files


def time_cap_callback(minutes: float):
    from transformers import TrainerCallback

    class TimeCap(TrainerCallback):
        """Stop (with a checkpoint) once `minutes` have passed since training began."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if minutes > 0 and time.perf_counter() - self.start > minutes * 60:
                print(f"[budget] {minutes} min reached at step {state.global_step} "
                      f"(repeat with max_steps={state.global_step})", flush=True)
                control.should_save = True
                control.should_training_stop = True
            return control

    return TimeCap()


def merge(sft_dir: Path, adapter_dir: Path, out: Path) -> Path:
    """SFT weights + LoRA adapter → one plain HF checkpoint with the SFT processor files."""
    from segzero_edge.models.reasoner import TorchReasoner

    reasoner = TorchReasoner.from_pretrained(sft_dir, adapter=str(adapter_dir), merge_adapter=True)
    out.mkdir(parents=True, exist_ok=True)
    reasoner.hf_model.save_pretrained(out)
    copy_processor_files(sft_dir, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="GRPO YAML (TrainConfig fields)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this many minutes (0 = no cap)")
    parser.add_argument("--eval-rows", type=int, default=64, help="val rows greedy-decoded after merging (0 = skip)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset dir holding val.parquet for that check (default: the train file's dir)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the YAML")
    args = parser.parse_args(argv)

    import torch

    from segzero_edge.train.config import load_config, save_config
    from segzero_edge.train.trainer import RUN_INFO_FILE, build_trainer, last_checkpoint

    config = load_config(args.config, args.overrides)
    if not torch.cuda.is_available() and config.bf16 and not cpu_bf16("cpu"):
        config = load_config(args.config, [*args.overrides, "bf16=false"])  # this CPU has no native bf16
    out = Path(config.output_dir)
    if (out / "grpo_report.json").is_file():
        print(f"{out}/grpo_report.json exists: stage done", flush=True)
        return 0
    timing = out.parent / "times.jsonl"
    device = "cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu"
    resume = last_checkpoint(out) is not None  # a killed run continues from TRL's last checkpoint
    with timed("grpo_reasoner", timing) as rec:
        trainer, info = build_trainer(config, resume=resume, extra_callbacks=[time_cap_callback(args.minutes)])
        out.mkdir(parents=True, exist_ok=True)
        save_config(config, out / "train_config.yaml")
        (out / RUN_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        trainer.train(resume_from_checkpoint=info["resumed_from"])
        trainer.save_model(str(out))
        rec.update(steps=trainer.state.global_step, where=hardware(device), resumed_from=info["resumed_from"])
    history = [h for h in trainer.state.log_history if "reward" in h]
    with timed("grpo_merge", timing):
        merged = merge(Path(config.model), out, out / "merged")
    report = {"config": str(args.config), "overrides": args.overrides, "steps": trainer.state.global_step,
              "where": hardware(device), "trainable_parameters": info["trainable_parameters"], "history": history}
    if args.eval_rows:
        from sft_reasoner import greedy_eval

        from segzero_edge.models.reasoner import TorchReasoner

        data_dir = args.data_dir or Path(config.data).parent
        with timed("grpo_greedy_eval", timing) as rec:
            model = TorchReasoner.from_pretrained(merged, device=device).hf_model
            from segzero_edge.models.processor import load_processor

            report["eval"] = greedy_eval(model, load_processor(merged), data_dir, args.eval_rows, 2, merged, device,
                                         max_new_tokens=config.max_completion_length)
            rec.update(report["eval"]["val_rewards"])
        print(json.dumps(report["eval"], indent=1), flush=True)
    write_json(out / "grpo_report.json", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
