#!/usr/bin/env bash
# Reproduce the embedded default from scratch: data -> segmenter (2 stages) -> reasoner SFT ->
# GRPO -> export -> eval. Seeds are fixed in each script's defaults and the step counts below
# are the ones of the shipped run (see README.md for where each ran and how long it took).
# Every script picks CUDA when present, else the CPU; the wall/CPU time of each step is
# appended to $RUN/times.jsonl and printed at the end.
#   bash recipes/embedded/run_all.sh            # RUN=runs/embedded, PY=python
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/embedded}
PY=${PY:-python}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

SEG_STEPS=${SEG_STEPS:-895}     # stage 1, best-of-3 loss, transformers init (GPU run: 5.8 min -> 895 steps)
TUNE_STEPS=${TUNE_STEPS:-4000}  # stage 2: fresh prompt encoder + mask decoder on the frozen encoder (CPU)
SFT_STEPS=${SFT_STEPS:-129}     # GPU run: 2.0 min budget -> 129 steps
GRPO_STEPS=${GRPO_STEPS:-13}    # GPU run: 2.7 min budget -> 13 steps

mkdir -p "$RUN"
[ -d "$RUN/data" ] || $PY recipes/embedded/make_data.py --out "$RUN/data"
[ -f "$RUN/segmenter_stage1/model.safetensors" ] || \
  $PY recipes/embedded/train_segmenter.py --out "$RUN/segmenter_stage1" --steps "$SEG_STEPS" --init-style hf --multimask min
[ -f "$RUN/segmenter/model.safetensors" ] || \
  $PY recipes/embedded/tune_segmenter.py --init "$RUN/segmenter_stage1" --out "$RUN/segmenter" \
    --steps "$TUNE_STEPS" --lr 2e-3 --warmup 100 --box-only 0.3 --jitter 0.3 --cache-scenes 300 \
    --images-per-step 4 --objects-per-image 4 --cache "$RUN/seg_cache.pt"
[ -f "$RUN/sft/model.safetensors" ] || \
  $PY recipes/embedded/sft_reasoner.py --data "$RUN/data" --out "$RUN/sft" --steps "$SFT_STEPS" --eval-rows 200
[ -f "$RUN/grpo/merged/model.safetensors" ] || \
  $PY recipes/embedded/grpo_reasoner.py --config recipes/embedded/grpo.yaml --eval-rows 200 \
    model="$RUN/sft" data="$RUN/data/train.parquet" output_dir="$RUN/grpo" max_steps="$GRPO_STEPS"
$PY recipes/embedded/export_and_eval.py --run "$RUN"

echo "time per step (wall s / cpu s of the main process / cpu s of its workers, where):"
$PY - "$RUN/times.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"  {r['step']:18s} {r['wall_s']:8.1f} {r['process_cpu_s']:8.1f} {r.get('children_cpu_s', 0):8.1f}  {r.get('where', '')}")
EOF
