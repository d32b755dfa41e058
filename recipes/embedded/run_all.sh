#!/usr/bin/env bash
# Reproduce the embedded default from scratch: data -> segmenter (2 stages) -> reasoner
# vision pre-training -> SFT -> GRPO -> export + eval -> ship. Seeds are fixed in each script's
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
HEAD_STEPS=${HEAD_STEPS:-300}     # segmenter stage 2: the IoU head only (CPU: 7 min)
VISION_STEPS=${VISION_STEPS:-402} # reasoner vision tower, dense per-token targets (CPU: 10.8 min)
SFT_STEPS=${SFT_STEPS:-818}       # reasoner SFT, vision frozen (CPU: 20 min)
GRPO_STEPS=${GRPO_STEPS:-150}     # GRPO through segzero_edge.train (CPU)

mkdir -p "$RUN"
[ -d "$RUN/data" ] || $PY recipes/embedded/make_data.py --out "$RUN/data"
[ -f "$RUN/segmenter_stage1/model.safetensors" ] || \
  $PY recipes/embedded/train_segmenter.py --out "$RUN/segmenter_stage1" --steps "$SEG_STEPS" --init-style hf --multimask min
[ -f "$RUN/segmenter/model.safetensors" ] || \
  $PY recipes/embedded/tune_segmenter.py --init "$RUN/segmenter_stage1" --out "$RUN/segmenter" --head-only \
    --no-reinit-decoder --no-tie-positions --steps "$HEAD_STEPS" --lr 1e-3 --warmup 20 --box-only 0.5 \
    --jitter 0.3 --images-per-step 8 --objects-per-image 4 --cache-scenes 300 --cache "$RUN/seg_cache.pt"
[ -f "$RUN/vision/model.safetensors" ] || \
  $PY recipes/embedded/pretrain_vision.py --out "$RUN/vision" --steps "$VISION_STEPS" --scenes 4000 --val-scenes 200
[ -f "$RUN/sft/model.safetensors" ] || \
  $PY recipes/embedded/sft_reasoner.py --data "$RUN/data" --out "$RUN/sft" --init "$RUN/vision" --freeze-vision \
    --steps "$SFT_STEPS" --batch 16 --lr 1e-3 --warmup 50 --eval-rows 96
[ -f "$RUN/grpo/merged/model.safetensors" ] || \
  $PY recipes/embedded/grpo_reasoner.py --config recipes/embedded/grpo.yaml --eval-rows 96 \
    model="$RUN/sft" data="$RUN/data/train.parquet" output_dir="$RUN/grpo" max_steps="$GRPO_STEPS"
$PY recipes/embedded/export_and_eval.py --run "$RUN"
$PY recipes/embedded/ship.py --run "$RUN" --model grpo

echo "time per step (wall s / cpu s of the main process / cpu s of its workers, where):"
$PY - "$RUN/times.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"  {r['step']:26s} {r['wall_s']:8.1f} {r['process_cpu_s']:8.1f} {r.get('children_cpu_s', 0):8.1f}  {r.get('where', '')}")
EOF
