#!/usr/bin/env bash
# Reproduce the embedded default from scratch: data -> segmenter (2 stages) -> reasoner
# vision pre-training -> SFT (2 legs) -> GRPO -> export + eval -> ship. Seeds are fixed in each script's
# defaults and the step counts below are the ones of the shipped run (README.md says where each
# ran and how long it took). Every script picks CUDA when present, else the CPU; the wall/CPU
# time of each step is appended to $RUN/times.jsonl and printed at the end.
#   bash recipes/embedded/run_all.sh            # RUN=runs/embedded, PY=python
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-runs/embedded}
PY=${PY:-python}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

SEG_STEPS=${SEG_STEPS:-895}       # segmenter stage 1, best-of-3 loss (H100: 5.8 min)
TUNE_STEPS=${TUNE_STEPS:-4000}    # segmenter stage 2 schedule; the shipped weights are its step-3000 snapshot (CPU)
VISION_STEPS=${VISION_STEPS:-402} # reasoner vision tower, dense per-token targets (CPU: 10.8 min)
SFT_STEPS=${SFT_STEPS:-818}       # reasoner SFT leg 1, vision frozen (CPU: 21 min)
SFT2_STEPS=${SFT2_STEPS:-480}     # reasoner SFT leg 2 from leg 1, lower peak LR (CPU: 13 min)
GRPO_STEPS=${GRPO_STEPS:-119}     # GRPO through segzero_edge.train (CPU: 20 min)

mkdir -p "$RUN"
[ -d "$RUN/data" ] || $PY recipes/embedded/make_data.py --out "$RUN/data"
[ -f "$RUN/segmenter_stage1/model.safetensors" ] || \
  $PY recipes/embedded/train_segmenter.py --out "$RUN/segmenter_stage1" --steps "$SEG_STEPS" --init-style hf --multimask min
[ -f "$RUN/segmenter/model.safetensors" ] || \
  $PY recipes/embedded/tune_segmenter.py --init "$RUN/segmenter_stage1" --out "$RUN/segmenter" \
    --steps "$TUNE_STEPS" --save-every 200 --lr 2e-3 --warmup 100 --box-only 0.3 --jitter 0.3 --cache-scenes 300 \
    --images-per-step 4 --objects-per-image 4 --cache "$RUN/seg_cache.pt"
[ -f "$RUN/vision/model.safetensors" ] || \
  $PY recipes/embedded/pretrain_vision.py --out "$RUN/vision" --steps "$VISION_STEPS" --scenes 4000 --val-scenes 200
[ -f "$RUN/sft_leg1/model.safetensors" ] || \
  $PY recipes/embedded/sft_reasoner.py --data "$RUN/data" --out "$RUN/sft_leg1" --init "$RUN/vision" --freeze-vision \
    --steps "$SFT_STEPS" --batch 16 --lr 1e-3 --warmup 50 --eval-rows 96
[ -f "$RUN/sft/model.safetensors" ] || \
  $PY recipes/embedded/sft_reasoner.py --data "$RUN/data" --out "$RUN/sft" --init "$RUN/sft_leg1" --freeze-vision \
    --steps "$SFT2_STEPS" --batch 16 --lr 6e-4 --warmup 10 --eval-rows 96
[ -f "$RUN/grpo/merged/model.safetensors" ] || \
  $PY recipes/embedded/grpo_reasoner.py --config recipes/embedded/grpo.yaml --eval-rows 96 \
    model="$RUN/sft" data="$RUN/data/train.parquet" output_dir="$RUN/grpo" max_steps="$GRPO_STEPS"
$PY recipes/embedded/export_and_eval.py --run "$RUN" --limit 150
$PY recipes/embedded/ship.py --run "$RUN" --model grpo

echo "time per step (wall s / cpu s of the main process / cpu s of its workers, where):"
$PY - "$RUN/times.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"  {r['step']:26s} {r['wall_s']:8.1f} {r['process_cpu_s']:8.1f} {r.get('children_cpu_s', 0):8.1f}  {r.get('where', '')}")
EOF
